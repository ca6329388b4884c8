"""File bytes and metadata: no stored image or 3D file names the model that made it, and a vote on a battle
whose file still does is not counted; the pixel limit is exact and read from the header.

Hostile files (tests/support/hostile_media.py) carry the model's name in every place their format allows. They
go through the real paths: a model server answering them to the Celery worker in a whole battle, the gallery
import, the upload. The bytes the page is served at /m/<code>/<turn>/<side>.<ext> are searched for the name
by this file's own reader (raw bytes, UTF-16, inflated PNG chunks, inflated gzip, parsed and base64-decoded
glTF), independent of the code under test, and must still open with the same geometry.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from arena.gallery import GalleryRejected, gallery_import
from arena.media import MediaRejected, media_accept, media_inspect, media_read
from arena.models import Battle, GalleryOutput, Generation, ModelEntry, Prompt
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from tests.support.gallery import gallery_dir_write
from tests.support.hostile_media import (
    NAMED_FILES,
    UNREAD_FILES,
    ImagesServer,
    glb_named,
    jpeg_named,
    png_bomb,
    png_of_size,
    textured_glb,
)
from tests.support.media import client_voter, media_battle_make, media_model_make, png_bytes
from tests.support.remote_3d_server import Answer, Remote3DServer
from voting.models import Vote

HOSTILE = NAMED_FILES | UNREAD_FILES
# The first word of each model's slug appears nowhere else: finding it in a file means the file names it.
MARKS = {"a": "hushcorp", "b": "quietlab"}


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


# --- an independent reader: where does a file still say a word? ---------------------------------------------


def _png_texts(data: bytes) -> list[bytes]:
    """The inflated payloads of a PNG's compressed metadata chunks."""
    found, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind in (b"zTXt", b"iCCP"):
            found.append(zlib.decompress(body.split(b"\0", 1)[1][1:]))
        elif kind == b"iTXt" and body.split(b"\0", 1)[1][:1] == b"\x01":
            found.append(zlib.decompress(body.split(b"\0", 1)[1][2:].split(b"\0", 2)[2]))
    return found


def _gltf_texts(document: object) -> list[bytes]:
    """A glTF document as text, and every base64 data URI in it decoded (and read as a file again)."""
    found = [json.dumps(document).encode()]
    for uri in re.findall(r'"(data:[^"]*)"', json.dumps(document)):
        found += _views(base64.b64decode(uri.split(",", 1)[1]))
    return found


def _views(data: bytes) -> list[bytes]:
    """Every way of reading a file where text could hide."""
    views = [data, data.replace(b"\0", b"")]  # UTF-16 text reads as ASCII with the zero bytes gone
    if data.startswith(b"\x89PNG"):
        views += _png_texts(data)
    if data.startswith(b"\x1f\x8b"):
        views.append(gzip.decompress(data))
    if data.startswith(b"glTF"):
        (length,) = struct.unpack_from("<I", data, 12)
        views += _gltf_texts(json.loads(data[20 : 20 + length]))
        pos = 20 + length
        while pos + 8 <= len(data):  # the BIN chunk and any other: textures inside are files too
            size, _kind = struct.unpack_from("<II", data, pos)
            body = data[pos + 8 : pos + 8 + size]
            for start in (m.start() for m in re.finditer(rb"\x89PNG", body)):
                views += _png_texts(body[start:])
            pos += 8 + size
    if data.lstrip().startswith(b"{"):
        views += _gltf_texts(json.loads(data))
    return views


def traces(data: bytes, word: str) -> int:
    """How many readings of `data` contain `word` (any case)."""
    return sum(word.encode() in view.lower() for view in _views(data))


def _model(mark: str, modality: str, kind: str, **config: object) -> ModelEntry:
    slug = f"{mark}-{modality}-model"
    return ModelEntry.objects.create(
        slug=slug,
        display_name=slug.replace("-", " ").title(),
        organization=mark.title(),
        modality=modality,
        backend_kind=kind,
        backend_config=config,
    )


def _side_model(code: str, side: str) -> ModelEntry:
    return Generation.objects.select_related("model").get(battle__code=code, turn=0, side=side).model


def _served(client: Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    return b"".join(response.streaming_content)


def _geometry(data: bytes, fmt: str) -> dict[str, int]:
    """What a viewer draws, as counts: trimesh's vertices for a mesh, splats for a splat file."""
    info = media_inspect(data, format_hint=fmt)
    if info.kind == "splat":
        return {"splats": info.meta["splats"]}
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type=fmt, force="scene", resolver=None)
    return {"vertices": sum(len(g.vertices) for g in scene.geometry.values())}


def _upload(client: Client, data: bytes, name: str = "x.png"):
    return client.post(
        "/api/battles",
        {"modality": "3d", "image": SimpleUploadedFile(name, data)},
        HTTP_ACCEPT="application/json",
    )


def _start(client: Client, **fields: object) -> str:
    response = client.post("/api/battles", fields, content_type="application/json")
    assert response.status_code == 201, response.content
    code = response.json()["code"]
    wait_for(battle_settled(code), timeout=60)
    return code


# --- the hostile files are what they claim (the tests below would prove nothing otherwise) ------------------


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_each_hostile_file_opens_and_names_its_model(key):
    data = HOSTILE[key](f"{MARKS['a']}-model")
    fmt = key.split("-")[0]
    assert media_inspect(data, format_hint=fmt).format == fmt
    assert traces(data, MARKS["a"]) >= 1


# --- generated outputs: whole battles on the worker ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_an_image_battle_serves_pictures_without_their_models_names(worker, alice, fmt):
    files = {f"{mark}-image-model": NAMED_FILES[fmt](f"{mark}-image-model") for mark in MARKS.values()}
    with ImagesServer(files) as server:
        for mark in MARKS.values():
            _model(mark, "image", "openai_images", base_url=server.base_url, model=f"{mark}-image-model")
        code = _start(alice, modality="image", prompt="a lighthouse at dusk")
    state = alice.get(f"/api/battles/{code}").json()
    assert state["status"] == "ready", state
    for side in "ab":
        media = state["turns"][0][side]["media"]
        body = _served(alice, media["url"])
        for mark in MARKS.values():
            assert traces(body, mark) == 0, f"side {side} still names {mark}"
        info = media_inspect(body, format_hint=fmt)
        assert info.format == fmt and media["meta"] == info.meta  # the page describes the stored file
        original = media_inspect(files[_side_model(code, side).backend_config["model"]])
        if fmt == "jpg":  # EXIF orientation 6 applied: the picture is turned, width and height swap
            assert (info.meta["width"], info.meta["height"]) == (
                original.meta["height"],
                original.meta["width"],
            )
        else:
            assert info.meta == {**original.meta, "bytes": info.meta["bytes"]}  # alpha kept (RGBA)
    response = vote_post(alice, code, "a")
    assert response.status_code == 200, response.content
    vote = Vote.objects.get(battle__code=code)
    assert vote.counted, vote.exclusion_reason  # a clean file is no leak: the vote counts


FORMATS_3D = {
    "glb": "glb",
    "gltf": "gltf",
    "obj": "obj",
    "ply-mesh": "ply",
    "ply-note": "ply",
    "ply-splat": "ply",
    "spz": "spz",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", sorted(FORMATS_3D))
def test_a_3d_battle_serves_files_without_their_models_names_and_with_the_same_geometry(worker, alice, key):
    fmt = FORMATS_3D[key]
    files = {mark: HOSTILE[key](f"{mark}-3d-model") for mark in MARKS.values()}
    routes = {mark: Answer(data, headers=(("X-Arena-Format", fmt),)) for mark, data in files.items()}
    with Remote3DServer(routes) as server:
        for mark in MARKS.values():
            _model(mark, "3d", "remote_3d", url=server.url(mark), timeout=10)
        code = _start(alice, modality="3d", prompt="a small chair")
    state = alice.get(f"/api/battles/{code}").json()
    battle = Battle.objects.get(code=code)
    assert state["status"] == "ready", state
    for side in "ab":
        media = state["turns"][0][side]["media"]
        assert media["url"] == f"/m/{code}/0/{side}.{fmt}"
        body = _served(alice, media["url"])
        for mark in MARKS.values():
            assert traces(body, mark) == 0, f"side {side} still names {mark}"
        original = files[_side_model(code, side).slug.split("-")[0]]
        assert _geometry(body, fmt) == _geometry(original, fmt)
        assert media["meta"]["bytes"] == len(body)
    response = vote_post(alice, code, "b")
    assert response.status_code == 200, response.content
    assert Vote.objects.get(battle=battle).counted


# --- gallery files ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_3d_gallery_is_stored_without_names_and_its_battles_serve_the_stored_bytes(worker, alice, tmp_path):
    keys = sorted(FORMATS_3D)
    outputs = {
        f"{mark}-gallery": {f"p-{key}.{FORMATS_3D[key]}": HOSTILE[key](f"{mark}-gallery") for key in keys}
        for mark in MARKS.values()
    }
    inputs = {f"p-{key}.txt": f"object {key}" for key in keys}
    inputs["p-glb.jpg"] = jpeg_named(f"{MARKS['a']}-photographer")  # the input picture has EXIF and GPS too
    directory = gallery_dir_write(tmp_path / "gallery", inputs=inputs, outputs=outputs)
    report = gallery_import(directory)
    assert sum(m.new for m in report.models) == 2 * len(keys)

    for output in GalleryOutput.objects.select_related("model", "prompt"):
        stored = media_read(output.media_name)
        for mark in MARKS.values():
            assert traces(stored, mark) == 0, f"{output} still names {mark}"
        key = output.prompt.gallery_key.removeprefix("p-")
        original = outputs[output.model.display_name][f"p-{key}.{FORMATS_3D[key]}"]
        assert _geometry(stored, output.media_format) == _geometry(original, output.media_format)
        assert output.media_meta["bytes"] == len(stored)
    picture = media_read(Prompt.objects.get(gallery_key="p-glb").image)
    assert traces(picture, MARKS["a"]) == 0 and b"Exif" not in picture

    again = gallery_import(directory)  # rewriting is deterministic: nothing changed, nothing is replaced
    assert sum(m.unchanged for m in again.models) == 2 * len(keys)

    code = _start(alice, modality="3d", gallery=True)
    battle = Battle.objects.get(code=code)
    for side in "ab":
        stored = GalleryOutput.objects.get(prompt=battle.prompt, model=_side_model(code, side))
        body = _served(alice, f"/m/{code}/0/{side}.{stored.media_format}")
        assert (
            body == media_read(stored.media_name)
            and traces(body, MARKS["a"]) == traces(body, MARKS["b"]) == 0
        )


@pytest.mark.django_db
def test_an_image_gallery_is_stored_without_names(tmp_path):
    outputs = {
        f"{mark}-painter": {
            f"p-{fmt}.{fmt}": NAMED_FILES[fmt](f"{mark}-painter") for fmt in ("png", "jpg", "webp")
        }
        for mark in MARKS.values()
    }
    inputs = {f"p-{fmt}.txt": f"a {fmt} picture" for fmt in ("png", "jpg", "webp")}
    directory = gallery_dir_write(tmp_path / "g", inputs=inputs, outputs=outputs)
    gallery_import(directory)
    assert GalleryOutput.objects.count() == 6
    # Encoding again is deterministic in every format (JPEG, WebP too): a second import changes nothing.
    assert sum(m.unchanged for m in gallery_import(directory).models) == 6
    for output in GalleryOutput.objects.all():
        stored = media_read(output.media_name)
        assert traces(stored, MARKS["a"]) == traces(stored, MARKS["b"]) == 0
        assert media_inspect(stored).meta == output.media_meta


def _draco_glb() -> bytes:
    """A GLB that requires Draco compression, which the arena's viewer cannot decode."""
    data = textured_glb("m")
    (length,) = struct.unpack_from("<I", data, 12)
    document = json.loads(data[20 : 20 + length])
    document["extensionsUsed"] = document["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    body = json.dumps(document).encode()
    body += b" " * (-len(body) % 4)
    rest = data[20 + length :]
    chunks = struct.pack("<II", len(body), 0x4E4F534A) + body + rest
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def _animated_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("a.glb", _draco_glb, "requires an extension the arena's viewer does not draw"),
        ("a.png", _animated_png, "Animated images are not supported; send a single frame."),
    ],
)
def test_a_file_that_cannot_be_rewritten_is_refused_with_a_reason(tmp_path, name, make, problem):
    directory = gallery_dir_write(tmp_path / "g", inputs={"a.txt": "a"}, outputs={"m": {name: make()}})
    with pytest.raises(GalleryRejected) as refused:
        gallery_import(directory)
    assert len(refused.value.problems) == 1 and problem in refused.value.problems[0]
    assert refused.value.problems[0].startswith(f"outputs/m/{name}: ")
    assert not GalleryOutput.objects.exists() and not ModelEntry.objects.exists()


# --- uploads ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["jpg", "png", "png-palette", "webp"])
def test_an_uploaded_picture_is_stored_without_exif_gps_or_text(alice, key):
    fmt = key.split("-")[0]
    for mark in MARKS.values():
        media_model_make(f"{mark}-3d", "3d")
    upload = HOSTILE[key]("hushcorp-camera")
    response = _upload(alice, upload, f"x.{fmt}")
    assert response.status_code == 201, response.content
    state = alice.get(f"/api/battles/{response.json()['code']}").json()
    body = _served(alice, state["input"]["image_url"])
    assert traces(body, "hushcorp") == 0
    from PIL import Image

    with Image.open(io.BytesIO(body)) as picture:
        assert not picture.getexif() and not picture.info.get("xmp") and not picture.info.get("exif")
        if fmt == "jpg":
            assert picture.size == (32, 48)  # turned upright by its EXIF orientation before it was dropped


# --- a file that still names a model voids the vote ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(NAMED_FILES))
def test_a_vote_on_a_battle_whose_stored_file_names_a_model_is_not_counted(alice, key):
    """A sanitiser miss, simulated: the battle's files are stored exactly as the model sent them."""
    fmt = key.split("-")[0]
    modality = "image" if fmt in ("png", "jpg", "webp") else "3d"
    named = media_model_make("hushcorp-maker", modality)
    other = media_model_make("quietlab-maker", modality)
    clean = media_accept(NAMED_FILES[key]("quietlab-maker"), format_hint=fmt)[0]
    battle = media_battle_make(
        voter=client_voter(alice),
        modality=modality,
        sides={"a": (clean, fmt), "b": (NAMED_FILES[key]("hushcorp-maker"), fmt)},
        models=(other, named),
    )
    response = vote_post(alice, battle.code, "b")
    assert response.status_code == 200, response.content
    vote = Vote.objects.get(battle=battle)
    assert not vote.counted
    assert vote.exclusion_reason.startswith("identity leak: the file of side B names 'hushcorp")


@pytest.mark.django_db(transaction=True)
def test_a_file_changed_in_storage_after_the_worker_stored_it_voids_the_vote(worker, alice):
    files = {mark: textured_glb(f"{mark}-3d-model") for mark in MARKS.values()}
    routes = {mark: Answer(data, content_type="model/gltf-binary") for mark, data in files.items()}
    with Remote3DServer(routes) as server:
        for mark in MARKS.values():
            _model(mark, "3d", "remote_3d", url=server.url(mark), timeout=10)
        code = _start(alice, modality="3d", prompt="a small chair")
    gen = Generation.objects.get(battle__code=code, side="a")
    Path(default_storage.path(gen.media_name)).write_bytes(glb_named(gen.model.slug))
    response = vote_post(alice, code, "a")
    assert response.status_code == 200, response.content
    vote = Vote.objects.get(battle__code=code)
    assert not vote.counted and "the file of side A names" in vote.exclusion_reason


@pytest.mark.django_db
def test_a_file_the_check_cannot_read_does_not_block_the_vote(alice):
    battle = media_battle_make(
        voter=client_voter(alice),
        modality="image",
        sides={"a": (png_bytes("red"), "png"), "b": (png_bytes("blue"), "png")},
    )
    default_storage.delete(Generation.objects.get(battle=battle, side="a").media_name)
    response = vote_post(alice, battle.code, "a")
    assert response.status_code == 200 and Vote.objects.get(battle=battle).counted


# --- the pixel limit ----------------------------------------------------------------------------------------

LIMIT = 10_000


def _encoded(width: int, height: int, fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(
        out, {"jpg": "JPEG", "webp": "WEBP", "png": "PNG"}[fmt]
    )
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("width", "height", "accepted"),
    [(100, 100, True), (73, 137, False), (100, 190, False)],  # the limit, the limit + 1, 1.9 times the limit
)
@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_an_upload_is_held_to_the_pixel_limit_exactly(alice, settings, recwarn, fmt, width, height, accepted):
    settings.ARENA_MAX_IMAGE_PIXELS = LIMIT
    for mark in MARKS.values():
        media_model_make(f"{mark}-3d", "3d")
    response = _upload(alice, _encoded(width, height, fmt), f"x.{fmt}")
    if accepted:
        assert response.status_code == 201, response.content
        return
    assert response.status_code == 400
    assert response.json()["error"] == (
        f"The uploaded image was refused: The image is {width} x {height} = {width * height:,} pixels; "
        f"the limit is {LIMIT:,}."
    )
    assert not Battle.objects.exists()
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


@pytest.mark.django_db
def test_a_gallery_file_over_the_pixel_limit_is_refused_and_nothing_is_imported(settings, tmp_path):
    settings.ARENA_MAX_IMAGE_PIXELS = LIMIT
    directory = gallery_dir_write(
        tmp_path / "g",
        inputs={"a.txt": "a", "b.txt": "b"},
        outputs={"m": {"a.png": png_of_size(100, 100), "b.png": png_of_size(100, 190)}},
    )
    with pytest.raises(GalleryRejected) as refused:
        gallery_import(directory)
    assert refused.value.problems == [
        f"outputs/m/b.png: The image is 100 x 190 = 19,000 pixels; the limit is {LIMIT:,}."
    ]
    assert not GalleryOutput.objects.exists() and not ModelEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_generated_picture_over_the_pixel_limit_fails_its_side(worker, alice, settings):
    settings.ARENA_MAX_IMAGE_PIXELS = LIMIT
    files = {"hushcorp-image-model": png_of_size(100, 190), "quietlab-image-model": png_of_size(100, 100)}
    with ImagesServer(files) as server:
        for mark in MARKS.values():
            _model(mark, "image", "openai_images", base_url=server.base_url, model=f"{mark}-image-model")
        code = _start(alice, modality="image", prompt="a lighthouse")
    big = Generation.objects.get(battle__code=code, model__slug="hushcorp-image-model")
    assert big.status == Generation.Status.FAILED and not big.media_name
    assert f"the limit is {LIMIT:,}" in big.error_detail
    assert Battle.objects.get(code=code).status == Battle.Status.FAILED


def test_a_texture_over_the_pixel_limit_refuses_its_glb(settings):
    settings.ARENA_MAX_IMAGE_PIXELS = 60
    with pytest.raises(MediaRejected, match="8 x 8 = 64 pixels; the limit is 60"):
        media_accept(textured_glb("m"), format_hint="glb")


def _peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM, the peak resident size, to the current size


def _peak_rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


@pytest.mark.django_db
def test_a_tiny_file_that_declares_a_huge_picture_is_refused_without_decoding_it(alice):
    """400 million pixels in 390 KB: decoding would take 400 MB; the header alone refuses it."""
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 1_000_000
    for mark in MARKS.values():
        media_model_make(f"{mark}-3d", "3d")
    _peak_rss_reset()
    before = _peak_rss()
    response = _upload(alice, bomb)
    grown = _peak_rss() - before
    assert response.status_code == 400 and "20,000 x 20,000 = 400,000,000 pixels" in response.json()["error"]
    assert grown < 50 * 1024 * 1024, f"the peak memory grew by {grown:,} bytes"
