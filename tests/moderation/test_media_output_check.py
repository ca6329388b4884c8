"""The image classifier on image outputs, and on a 3D output's rendered thumbnail."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from arena.media import media_inspect
from arena.thumbnails import thumbnail_save
from tests.support.media import glb_bytes
from tests.support.tiny_classifier import tiny_image_classifier_save
from workers.services import media_output_check


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    return tiny_image_classifier_save(tmp_path_factory.mktemp("moderation") / "image")


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(out, format="PNG")
    return out.getvalue()


def test_an_image_output_is_checked_only_when_a_classifier_is_configured(settings, image_model):
    red = _png((230, 10, 10))
    info = media_inspect(red, format_hint="png")
    settings.ARENA_MODERATION_IMAGE_MODEL_PATH = ""
    assert not media_output_check(red, info, "").flagged
    settings.ARENA_MODERATION_IMAGE_MODEL_PATH = str(image_model)
    verdict = media_output_check(red, info, "")
    assert verdict.flagged and "nsfw" in verdict.reasons[0]
    green = _png((10, 230, 10))
    assert not media_output_check(green, media_inspect(green, format_hint="png"), "").flagged


def test_a_3d_output_is_judged_by_its_thumbnail(settings, tmp_path, image_model):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARENA_MODERATION_IMAGE_MODEL_PATH = str(image_model)
    red, green = glb_bytes("sphere", (250, 0, 0)), glb_bytes("sphere", (0, 250, 0))
    verdicts = {}
    for name, data in (("red", red), ("green", green)):
        info = media_inspect(data, format_hint="glb")
        verdicts[name] = media_output_check(data, info, thumbnail_save(data, info))
    assert verdicts["red"].flagged and not verdicts["green"].flagged
    assert not media_output_check(red, media_inspect(red, format_hint="glb"), "").flagged, "no thumbnail"
