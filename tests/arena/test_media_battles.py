"""Image and 3D battles through the battle → generation → vote → leaderboard path, and their refusals."""

from __future__ import annotations

import pytest
from django.test import Client

from arena.media import media_inspect, media_read, media_save
from arena.models import Battle, GalleryOutput, Generation, Prompt, PromptSet
from ranking.models import PairTally
from ranking.services import leaderboard_refresh
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from tests.support.media import (
    client_voter,
    glb_bytes,
    media_battle_make,
    media_model_make,
    png_bytes,
    splat_bytes,
)
from voting.models import Vote


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _mesh_battle(client: Client) -> Battle:
    voter = client_voter(client)
    return media_battle_make(
        voter=voter,
        modality="3d",
        sides={"a": (glb_bytes("box"), "glb"), "b": (glb_bytes("sphere", (40, 40, 200)), "glb")},
    )


@pytest.mark.django_db
def test_the_page_state_gives_each_side_a_battle_url_never_the_stored_name(alice):
    battle = _mesh_battle(alice)
    state = alice.get(f"/api/battles/{battle.code}").json()
    side = state["turns"][0]["a"]
    gen = Generation.objects.get(battle=battle, side="a")
    assert side["media"]["url"] == f"/m/{battle.code}/0/a.glb"
    assert side["media"]["kind"] == "mesh" and side["media"]["meta"]["textured"] is True
    assert gen.media_name not in str(state) and battle.model_a.slug not in str(state)
    assert state["criteria"] == [
        {"key": "geometry", "label": "Geometry"},
        {"key": "texture", "label": "Texture"},
        {"key": "alignment", "label": "Prompt alignment"},
    ]
    assert state["can_continue"] is False and state["input"] == {
        "text": "a small red object",
        "image_url": None,
    }

    response = alice.get(side["media"]["url"])
    assert response.status_code == 200 and response["Content-Type"] == "model/gltf-binary"
    assert "private" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert media_inspect(body, format_hint="glb").meta["faces"] == 12


@pytest.mark.django_db
def test_another_voter_a_forged_code_or_a_wrong_extension_get_no_file(alice, bob):
    battle = _mesh_battle(alice)
    client_voter(bob)
    assert bob.get(f"/m/{battle.code}/0/a.glb").status_code == 403
    assert alice.get("/m/forged-code/0/a.glb").status_code == 404
    assert alice.get(f"/m/{battle.code}/0/a.ply").status_code == 404
    assert alice.get(f"/m/{battle.code}/3/a.glb").status_code == 404
    assert alice.get(f"/m/{battle.code}/0/c.glb").status_code == 404


@pytest.mark.django_db
def test_a_vote_with_criteria_feeds_a_board_per_criterion_and_the_format_boards(alice):
    battle = _mesh_battle(alice)
    criteria = {"geometry": "b", "texture": "a", "alignment": "tie"}
    response = vote_post(alice, battle.code, "a", body={"criteria": criteria})
    assert response.status_code == 200, response.content
    vote = Vote.objects.get(battle=battle)
    assert vote.criteria == criteria and vote.counted
    assert vote.categories == ["format:mesh", "format:textured"]
    assert response.json()["state"]["vote"]["criteria"] == criteria

    lo, hi = sorted([battle.model_a_id, battle.model_b_id])
    a_is_lo = battle.model_a_id == lo
    cells = {
        t.category: (t.lo_won, t.hi_won, t.ties)
        for t in PairTally.objects.filter(modality="3d", model_lo_id=lo, model_hi_id=hi)
    }
    a_won = (1, 0, 0) if a_is_lo else (0, 1, 0)
    b_won = (0, 1, 0) if a_is_lo else (1, 0, 0)
    assert cells[""] == a_won and cells["format:textured"] == a_won
    assert cells["criterion:geometry"] == b_won
    assert cells["criterion:texture"] == a_won
    assert cells["criterion:alignment"] == (0, 0, 1)

    boards = {(s.category, s.style_control) for s in leaderboard_refresh(modality="3d")}
    assert {("criterion:geometry", False), ("format:mesh", False), ("", False)} <= boards
    page = alice.get("/leaderboard/3d/?category=criterion:geometry")
    assert page.status_code == 200 and b"Criterion: Geometry" in page.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({"smell": "a"}, "Unknown criterion 'smell'"),
        ({"geometry": "left"}, "Unknown choice 'left' for geometry"),
        (["geometry"], "criteria must be an object"),
    ],
)
def test_bad_criteria_are_refused_and_nothing_is_recorded(alice, criteria, message):
    battle = _mesh_battle(alice)
    response = vote_post(alice, battle.code, "a", body={"criteria": criteria})
    assert response.status_code == 400 and message in response.json()["error"]
    assert not Vote.objects.filter(battle=battle).exists()
    assert Battle.objects.get(id=battle.id).status == Battle.Status.READY


@pytest.mark.django_db
def test_splat_against_splat_joins_the_splat_board_and_mixed_formats_join_none(alice):
    voter = client_voter(alice)
    splats = media_battle_make(
        voter=voter,
        modality="3d",
        sides={"a": (splat_bytes(seed=1), "splat"), "b": (splat_bytes(seed=2), "splat")},
    )
    mixed = media_battle_make(
        voter=voter, modality="3d", sides={"a": (splat_bytes(), "splat"), "b": (glb_bytes(), "glb")}
    )
    for battle in (splats, mixed):
        assert vote_post(alice, battle.code, "b").status_code == 200
    assert Vote.objects.get(battle=splats).categories == ["format:splat"]
    assert Vote.objects.get(battle=mixed).categories == []


@pytest.mark.django_db
def test_criteria_are_refused_where_the_arena_has_none(alice):
    voter = client_voter(alice)
    battle = media_battle_make(
        voter=voter, modality="image", sides={"a": (png_bytes("red"), "png"), "b": (png_bytes("blue"), "png")}
    )
    response = vote_post(alice, battle.code, "a", body={"criteria": {"geometry": "a"}})
    assert response.status_code == 400 and "expected alignment, quality" in response.json()["error"]


def _start(client: Client, **fields: object):
    return client.post("/api/battles", fields, HTTP_ACCEPT="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("upload", "name", "message"),
    [
        (b"not an image at all", "x.png", "could not be recognised"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "x.png", "damaged or unreadable"),
        (glb_bytes(), "x.png", "Upload a PNG, JPEG or WebP image; this file is GLB"),
    ],
)
def test_a_bad_input_image_is_refused_with_a_reason_and_no_battle_starts(alice, upload, name, message):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = _start(alice, modality="3d", prompt="", image=SimpleUploadedFile(name, upload))
    assert response.status_code == 400 and message in response.json()["error"], response.content
    assert not Battle.objects.exists()


@pytest.mark.django_db
def test_an_oversized_upload_is_refused_before_it_is_read(alice, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.ARENA_MAX_UPLOAD_BYTES = 1024
    response = _start(alice, modality="3d", image=SimpleUploadedFile("big.png", png_bytes(size=(400, 400))))
    assert response.status_code == 413 and "the limit is 1,024" in response.json()["error"]


@pytest.mark.django_db
def test_image_battles_refuse_an_uploaded_image_and_text_battles_refuse_gallery(alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = _start(alice, modality="image", prompt="a cat", image=SimpleUploadedFile("x.png", png_bytes()))
    assert response.status_code == 400 and "text-to-image" in response.json()["error"]
    response = alice.post(
        "/api/battles", {"modality": "text", "gallery": True}, content_type="application/json"
    )
    assert response.status_code == 400 and "Galleries hold image and 3D" in response.json()["error"]
    response = alice.post(
        "/api/battles", {"modality": "3d", "gallery": "maybe"}, content_type="application/json"
    )
    assert response.status_code == 400 and "gallery must be true or false" in response.json()["error"]


@pytest.mark.django_db
def test_a_gallery_battle_with_no_gallery_says_so(alice):
    response = alice.post(
        "/api/battles", {"modality": "3d", "gallery": True}, content_type="application/json"
    )
    assert response.status_code == 503 and "no 3D gallery" in response.json()["error"]


def _gallery(models: list, prompts: int = 2) -> PromptSet:
    """A gallery made in the test: every model has a GLB for every prompt but the showcase one."""
    prompt_set = PromptSet.objects.create(slug="g", name="G", modality="3d")
    for i in range(prompts):
        prompt = Prompt.objects.create(
            prompt_set=prompt_set, text=f"thing {i}", modality="3d", gallery_key=f"p{i}"
        )
        for j, model in enumerate(models):
            data = glb_bytes("box" if j % 2 else "sphere", (50 * j, 100, 30))
            info = media_inspect(data, format_hint="glb")
            GalleryOutput.objects.create(
                prompt=prompt,
                model=model,
                media_name=media_save(data, info, folder="gallery"),
                media_format="glb",
                media_kind="mesh",
                media_meta=info.meta,
                sha256="x" * 64,
            )
    return prompt_set


@pytest.mark.django_db(transaction=True)
def test_a_gallery_battle_pairs_two_models_with_outputs_and_the_worker_serves_them(worker, alice, settings):
    settings.ARENA_VOTE_CRITERIA = {}
    gallery_models = [
        media_model_make(f"gal-{i}", "3d", backend_kind="gallery", backend_config={"gallery": "g"})
        for i in range(3)
    ]
    media_model_make("live-3d", "3d")  # a live model never meets a gallery prompt
    _gallery(gallery_models)
    response = alice.post(
        "/api/battles", {"modality": "3d", "gallery": True}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    code = response.json()["code"]
    wait_for(battle_settled(code))
    battle = Battle.objects.get(code=code)
    assert {battle.model_a, battle.model_b} <= set(gallery_models)
    assert battle.prompt.gallery_key in ("p0", "p1") and battle.conversation == [battle.prompt.text]
    state = alice.get(f"/api/battles/{code}").json()
    assert state["status"] == "ready" and state["gallery"] is True and state["criteria"] == []
    for side in "ab":
        stored = GalleryOutput.objects.get(prompt=battle.prompt, model=getattr(battle, f"model_{side}"))
        url = state["turns"][0][side]["media"]["url"]
        assert url == f"/m/{code}/0/{side}.glb" and stored.media_name not in url
        body = b"".join(alice.get(url).streaming_content)
        assert body == media_read(stored.media_name)
    assert vote_post(alice, code, "tie").status_code == 200


@pytest.mark.django_db
def test_image_and_3d_battles_cannot_be_continued(alice):
    battle = _mesh_battle(alice)
    response = alice.post(
        f"/api/battles/{battle.code}/continue", {"prompt": "and now?"}, content_type="application/json"
    )
    assert response.status_code == 409 and "one prompt" in response.json()["error"]


@pytest.mark.django_db
def test_the_3d_board_shows_a_thumbnail_per_model_from_voted_battles_only(alice, bob, settings):
    from arena.thumbnails import thumbnail_save

    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    battle = _mesh_battle(alice)
    for gen in battle.generations.all():
        data = media_read(gen.media_name)
        gen.thumbnail_name = thumbnail_save(data, media_inspect(data, format_hint="glb"))
        gen.save(update_fields=["thumbnail_name"])
    leaderboard_refresh(modality="3d")
    assert alice.get("/api/leaderboard/3d").json()["thumbnails"] == {}, "no vote yet: nothing public"
    assert vote_post(alice, battle.code, "a").status_code == 200
    leaderboard_refresh(modality="3d")
    thumbnails = bob.get("/api/leaderboard/3d").json()["thumbnails"]
    assert set(thumbnails) == {battle.model_a.slug, battle.model_b.slug}
    for url in thumbnails.values():
        response = bob.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
