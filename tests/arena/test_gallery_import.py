"""`import_gallery`: 3D Arena's layout, checked by content, imported all or nothing, idempotent again."""

from __future__ import annotations

import hashlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from arena.gallery import GalleryRejected, gallery_import
from arena.media import media_accept, media_read
from arena.models import GalleryOutput, ModelEntry, Prompt, PromptSet
from tests.support.gallery import (
    gallery_dir_write,
    glb_bytes,
    mesh_ply_bytes,
    png_bytes,
    splat_bytes,
    splat_ply_bytes,
    spz_bytes,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _stored(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _nothing_imported(root: Path) -> None:
    assert not PromptSet.objects.exists()
    assert not Prompt.objects.exists()
    assert not ModelEntry.objects.exists()
    assert not GalleryOutput.objects.exists()
    assert _stored(root) == set()


def _three_d_gallery(root: Path) -> Path:
    return gallery_dir_write(
        root,
        inputs={
            "cat.txt": "A sleeping cat on a cushion",
            "cat.png": png_bytes("orange"),
            "dog.txt": "A wooden toy dog",
            "robot.png": png_bytes("grey", shape="rectangle"),
        },
        outputs={
            "Model Alpha": {
                "cat.glb": glb_bytes("sphere"),
                "dog.ply": mesh_ply_bytes(),
                "robot.splat": splat_bytes(),
            },
            "beta3d": {
                "cat.spz": spz_bytes(),
                "dog.ply": splat_ply_bytes(),
                "robot.glb": glb_bytes("box", (20, 200, 20)),
            },
        },
        extra={"README.md": b"3D Arena sample\n"},
    )


def test_a_good_3d_gallery_is_imported_with_its_prompts_models_and_outputs(tmp_path, media_root):
    directory = _three_d_gallery(tmp_path / "sample")
    out = StringIO()
    call_command(
        "import_gallery", str(directory), "--name", "Sample gallery", "--showcase", "cat", stdout=out
    )

    prompt_set = PromptSet.objects.get()
    assert (prompt_set.slug, prompt_set.name, prompt_set.modality) == (
        "sample-gallery",
        "Sample gallery",
        "3d",
    )
    prompts = {p.gallery_key: p for p in prompt_set.prompts.all()}
    assert set(prompts) == {"cat", "dog", "robot"}
    assert prompts["cat"].text == "A sleeping cat on a cushion" and prompts["cat"].image.startswith("inputs/")
    assert media_read(prompts["cat"].image) == (directory / "inputs" / "cat.png").read_bytes()
    assert prompts["dog"].image == "" and prompts["robot"].text == "" and prompts["robot"].image
    assert [k for k, p in prompts.items() if p.showcase] == ["cat"]
    assert all(p.modality == "3d" and p.status == Prompt.Status.APPROVED for p in prompts.values())

    models = {m.slug: m for m in ModelEntry.objects.all()}
    assert set(models) == {"model-alpha", "beta3d"}
    alpha = models["model-alpha"]
    assert (alpha.display_name, alpha.backend_kind, alpha.modality) == ("Model Alpha", "gallery", "3d")
    assert alpha.backend_config == {"gallery": "sample-gallery"}

    outputs = {
        (o.model.slug, o.prompt.gallery_key): o
        for o in GalleryOutput.objects.select_related("model", "prompt")
    }
    assert len(outputs) == 6
    formats = {key: (o.media_format, o.media_kind) for key, o in outputs.items()}
    assert formats == {
        ("model-alpha", "cat"): ("glb", "mesh"),
        ("model-alpha", "dog"): ("ply", "mesh"),
        ("model-alpha", "robot"): ("splat", "splat"),
        ("beta3d", "cat"): ("spz", "splat"),
        ("beta3d", "dog"): ("ply", "splat"),
        ("beta3d", "robot"): ("glb", "mesh"),
    }
    assert outputs[("model-alpha", "cat")].media_meta["faces"] == 320
    assert outputs[("model-alpha", "cat")].media_meta["textured"] is True
    assert outputs[("beta3d", "dog")].media_meta["splats"] == 300
    assert outputs[("beta3d", "cat")].media_meta["splats"] == 300
    for (slug, key), output in outputs.items():
        source = next((directory / "outputs").glob(f"*/{key}.*"), None)
        assert source is not None
        data = media_read(output.media_name)
        assert output.sha256 == hashlib.sha256(data).hexdigest()
        # Random names: nothing in a stored name says which model or prompt it belongs to.
        assert output.media_name.startswith("gallery/") and output.media_name.endswith(
            "." + output.media_format
        )
        for revealing in (slug, "alpha", "beta", key):
            assert revealing not in output.media_name.lower()
        assert output.thumbnail_name.startswith("thumbs/")
        assert media_read(output.thumbnail_name).startswith(b"\x89PNG")
    assert len({o.media_name for o in outputs.values()}) == 6

    text = out.getvalue()
    assert "Model Alpha (model-alpha, new model): 3 outputs, 3 new, 0 replaced, 0 unchanged" in text
    assert "beta3d (beta3d, new model): 3 outputs, 3 new" in text
    assert "3 prompts (3 new" in text and "2 models, 6 outputs (6 new" in text
    assert "README.md: not part of the gallery layout; ignored." in text
    # Stored: 2 input images, 6 outputs, 6 thumbnails; nothing else.
    assert len(_stored(media_root)) == 14


def test_an_image_gallery_is_recognised_from_its_outputs(tmp_path):
    from PIL import Image

    def encoded(fmt: str) -> bytes:
        from io import BytesIO

        out = BytesIO()
        Image.new("RGB", (40, 30), "teal").save(out, format=fmt)
        return out.getvalue()

    directory = gallery_dir_write(
        tmp_path / "pics",
        inputs={"sunset.txt": "A sunset over the sea", "forest.txt": "A misty forest"},
        outputs={
            "painter": {"sunset.png": png_bytes("red"), "forest.jpg": encoded("JPEG")},
            "sketcher": {"sunset.webp": encoded("WEBP"), "forest.jpeg": encoded("JPEG")},
        },
    )
    report = gallery_import(directory)
    assert report.modality == "image" and PromptSet.objects.get().modality == "image"
    assert sorted(GalleryOutput.objects.values_list("media_format", flat=True)) == [
        "jpg",
        "jpg",
        "png",
        "webp",
    ]
    assert set(GalleryOutput.objects.values_list("media_kind", flat=True)) == {"image"}
    meta = GalleryOutput.objects.get(model__slug="painter", prompt__gallery_key="forest").media_meta
    assert (meta["width"], meta["height"]) == (40, 30)
    assert set(ModelEntry.objects.values_list("modality", flat=True)) == {"image"}


def test_a_broken_gallery_is_refused_with_every_problem_and_nothing_is_imported(
    tmp_path, settings, media_root
):
    settings.ARENA_MAX_MEDIA_BYTES = 20_000
    glb = glb_bytes("sphere")
    directory = gallery_dir_write(
        tmp_path / "broken",
        inputs={
            "cat.txt": "A cat",
            "dog.txt": "A dog",
            "owl.txt": "An owl",
            "fox.png": b"just some text, no image",
        },
        outputs={
            "good": {"cat.glb": glb, "dog.glb": glb_bytes("box"), "owl.ply": mesh_ply_bytes()},
            "bad": {
                "cat.glb": glb[:-40],  # truncated
                "dog.ply": b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n",  # no end_header
                "owl.ply": glb,  # a GLB named .ply
                "ghost.glb": glb,  # no inputs/ghost.*
            },
            "other": {"cat.fbx": b"Kaydara FBX Binary", "dog.splat": splat_bytes(1000)},  # 32,000 bytes
        },
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_gallery", str(directory), stdout=StringIO())
    message = str(caught.value)
    assert "Nothing was written" in message
    expected = {
        "inputs/fox.png": "does not start like a PNG",
        "outputs/bad/cat.glb": "truncated",
        "outputs/bad/dog.ply": "no end_header",
        "outputs/bad/owl.ply": "named .ply but its content is GLB",
        "outputs/bad/ghost.glb": "no input",
        "outputs/other/cat.fbx": "unknown output type .fbx",
        "outputs/other/dog.splat": "the limit is 20,000",
    }
    lines = message.splitlines()
    for path, reason in expected.items():
        assert any(path in line and reason in line for line in lines), (path, reason, message)
    assert "outputs/good/" not in message
    _nothing_imported(media_root)


def test_a_failure_while_writing_deletes_every_file_stored_so_far(tmp_path, media_root):
    directory = _three_d_gallery(tmp_path / "sample")
    changed = directory / "outputs" / "beta3d" / "robot.glb"

    def progress(line: str) -> None:
        # Someone edits a file of the next model after the first model's files were stored.
        if line.startswith("Model Alpha"):
            assert len(_stored(media_root)) > 0
            changed.write_bytes(glb_bytes("sphere", (1, 2, 3)))

    with pytest.raises(GalleryRejected) as caught:
        gallery_import(directory, progress=progress)
    assert (
        "outputs/beta3d/robot.glb: the file changed while the gallery was being imported"
        in caught.value.problems[0]
    )
    _nothing_imported(media_root)


def test_a_second_import_of_the_same_gallery_changes_nothing(tmp_path, media_root):
    directory = _three_d_gallery(tmp_path / "sample")
    gallery_import(directory)
    rows = sorted(GalleryOutput.objects.values_list("id", "media_name", "thumbnail_name", "sha256"))
    prompts = sorted(Prompt.objects.values_list("id", "text", "image"))
    stored = _stored(media_root)

    out = StringIO()
    call_command("import_gallery", str(directory), stdout=out)
    assert sorted(GalleryOutput.objects.values_list("id", "media_name", "thumbnail_name", "sha256")) == rows
    assert sorted(Prompt.objects.values_list("id", "text", "image")) == prompts
    assert _stored(media_root) == stored
    assert (PromptSet.objects.count(), ModelEntry.objects.count()) == (1, 2)
    text = out.getvalue()
    assert "Model Alpha (model-alpha, existing model): 3 outputs, 0 new, 0 replaced, 3 unchanged" in text
    assert "(0 new, 0 updated, 3 unchanged)" in text


def test_a_changed_file_replaces_its_output_and_the_old_file_is_deleted(
    tmp_path, media_root, django_capture_on_commit_callbacks
):
    directory = _three_d_gallery(tmp_path / "sample")
    gallery_import(directory)
    before = GalleryOutput.objects.get(model__slug="beta3d", prompt__gallery_key="robot")
    untouched = GalleryOutput.objects.get(model__slug="beta3d", prompt__gallery_key="cat")
    old_image = Prompt.objects.get(gallery_key="cat").image

    new_glb = glb_bytes("sphere", (250, 250, 0))
    (directory / "outputs" / "beta3d" / "robot.glb").write_bytes(new_glb)
    (directory / "inputs" / "cat.png").write_bytes(png_bytes("blue"))
    (directory / "inputs" / "dog.txt").write_text("A wooden toy dog on wheels")
    with django_capture_on_commit_callbacks(execute=True):
        report = gallery_import(directory)

    after = GalleryOutput.objects.get(model__slug="beta3d", prompt__gallery_key="robot")
    stored_glb = media_accept(new_glb, format_hint="glb")[0]  # stored as rewritten without metadata
    assert after.id == before.id and after.sha256 == hashlib.sha256(stored_glb).hexdigest()
    assert after.media_name != before.media_name and media_read(after.media_name) == stored_glb
    assert after.thumbnail_name and after.thumbnail_name != before.thumbnail_name
    assert after.media_meta["faces"] == 320
    stored = _stored(media_root)
    assert before.media_name not in stored and before.thumbnail_name not in stored
    assert GalleryOutput.objects.get(pk=untouched.pk).media_name == untouched.media_name
    cat = Prompt.objects.get(gallery_key="cat")
    assert cat.image != old_image and old_image not in stored and media_read(cat.image) == png_bytes("blue")
    assert Prompt.objects.get(gallery_key="dog").text == "A wooden toy dog on wheels"
    beta = next(m for m in report.models if m.slug == "beta3d")
    assert (beta.new, beta.replaced, beta.unchanged) == (0, 1, 2)
    assert (report.prompts_created, report.prompts_updated, report.prompts_unchanged) == (0, 2, 1)


def test_a_model_slug_taken_by_a_live_model_is_refused(tmp_path, make_model, media_root):
    make_model(slug="beta3d", modality="3d", backend_kind="demo_3d", backend_config={})
    directory = _three_d_gallery(tmp_path / "sample")
    with pytest.raises(GalleryRejected) as caught:
        gallery_import(directory)
    assert any(
        "outputs/beta3d/: model 'beta3d' already exists as a 'demo_3d' model" in p
        for p in caught.value.problems
    )
    assert ModelEntry.objects.count() == 1 and not GalleryOutput.objects.exists()
    assert _stored(media_root) == set()


def test_mixed_images_and_meshes_are_refused_unless_the_modality_is_given(tmp_path, media_root):
    directory = gallery_dir_write(
        tmp_path / "mixed",
        inputs={"a.txt": "an apple", "b.txt": "a banana"},
        outputs={"m": {"a.png": png_bytes(), "b.glb": glb_bytes()}},
    )
    with pytest.raises(GalleryRejected) as caught:
        gallery_import(directory)
    assert "mix images (1) and 3D files (1)" in caught.value.problems[0]
    with pytest.raises(GalleryRejected) as caught:
        gallery_import(directory, modality="3d")
    assert caught.value.problems == ["outputs/m/a.png: a image file in a 3d gallery."]
    _nothing_imported(media_root)


def test_a_dry_run_reports_what_would_happen_and_writes_nothing(tmp_path, media_root):
    directory = _three_d_gallery(tmp_path / "sample")
    out = StringIO()
    call_command("import_gallery", str(directory), "--dry-run", stdout=out)
    assert "Dry run, nothing written" in out.getvalue()
    assert (
        "Model Alpha (model-alpha, new model): 3 outputs, 3 new, 0 replaced, 0 unchanged (dry run)"
        in out.getvalue()
    )
    _nothing_imported(media_root)


def test_unknown_showcase_ids_and_missing_folders_are_refused(tmp_path):
    directory = _three_d_gallery(tmp_path / "sample")
    with pytest.raises(CommandError, match="--showcase unicorn: no such id in inputs/"):
        call_command("import_gallery", str(directory), "--showcase", "cat", "unicorn", stdout=StringIO())
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no inputs/ or outputs/ folder"):
        call_command("import_gallery", str(tmp_path / "empty"), stdout=StringIO())
    assert not PromptSet.objects.exists()


def test_empty_model_folders_prompts_without_outputs_and_stray_files_are_reported(tmp_path):
    directory = gallery_dir_write(
        tmp_path / "notes",
        inputs={"a.txt": "an apple", "b.txt": "a banana", ".DS_Store": b"\0"},
        outputs={"m": {"a.glb": glb_bytes()}, "unfinished": {}},
        extra={"outputs/a.glb": glb_bytes(), "inputs/old/a.txt": b"older"},
    )
    report = gallery_import(directory)
    assert report.warnings == [
        "inputs/old/: a folder inside inputs/ is ignored.",
        "outputs/a.glb: a file directly in outputs/ is ignored (outputs/<model>/<id>.*).",
        "outputs/unfinished/: no outputs; the model is not imported.",
        "inputs/b: no model has an output for this prompt.",
    ]
    assert list(ModelEntry.objects.values_list("slug", flat=True)) == ["m"]
    assert Prompt.objects.count() == 2
