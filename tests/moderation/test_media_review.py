"""Staff review image and 3D battles (outputs, input, thumbnails); the public sees only safe thumbnails."""

from __future__ import annotations

import pytest
from django.test import Client

from arena.media import media_save
from arena.models import Generation
from arena.thumbnails import thumbnail_save
from tests.moderation.conftest import logged_in
from tests.support.challenge import vote_post
from tests.support.media import client_voter, glb_bytes, media_battle_make, png_bytes


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _battle_with_thumbnails(client: Client):
    battle = media_battle_make(
        voter=client_voter(client),
        modality="3d",
        sides={"a": (glb_bytes("box"), "glb"), "b": (glb_bytes(), "glb")},
    )
    from arena.media import media_inspect

    for gen in battle.generations.all():
        data = glb_bytes("box") if gen.side == "a" else glb_bytes()
        gen.thumbnail_name = thumbnail_save(data, media_inspect(data, format_hint="glb"))
        gen.save(update_fields=["thumbnail_name"])
    info = media_inspect(png_bytes(), format_hint="png")
    battle.input_image = media_save(png_bytes(), info, folder="inputs")
    battle.save(update_fields=["input_image"])
    return battle


@pytest.mark.django_db
def test_a_moderator_sees_both_3d_outputs_their_thumbnails_and_the_input_image(alice, moderator):
    battle = _battle_with_thumbnails(alice)
    staff = logged_in(moderator)
    page = staff.get(f"/admin/arena/battle/{battle.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/m/{battle.code}/0/a.glb" in html and "Download the GLB mesh" in html
    assert f"/m/{battle.code}/input.png" in html and "faces: 12" in html
    thumb = Generation.objects.get(battle=battle, side="a").thumbnail_name
    thumb_url = "/m/thumbs/" + thumb.removeprefix("thumbs/")
    assert thumb_url in html
    assert staff.get(f"/m/{battle.code}/0/b.glb").status_code == 200, "staff may open any battle's files"
    assert staff.get(thumb_url).status_code == 200


@pytest.mark.django_db
def test_a_thumbnail_is_public_only_once_its_battle_is_voted(alice, bob, dave):
    battle = _battle_with_thumbnails(alice)
    thumb_url = "/m/thumbs/" + Generation.objects.get(battle=battle, side="a").thumbnail_name.removeprefix(
        "thumbs/"
    )
    assert bob.get(thumb_url).status_code == 404, "an unvoted output could give its model away"
    assert logged_in(dave).get(f"/m/{battle.code}/0/a.glb").status_code == 403, "not staff, not the voter"
    assert vote_post(alice, battle.code, "a").status_code == 200
    response = bob.get(thumb_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert bob.get("/m/thumbs/forged-token.png").status_code == 404
