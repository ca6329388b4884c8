"""`seed_demo`: the text demo, live image and 3D demo models and the two demo galleries, idempotently."""

from __future__ import annotations

import filecmp
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from arena.demo import DEMO_MODELS
from arena.demo_gallery import demo_gallery_write
from arena.media import media_read
from arena.models import GalleryOutput, ModelEntry, PromptSet
from workers.backends import backend_validate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.VAR_DIR


def _stored(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _state() -> list[tuple]:
    return sorted(
        GalleryOutput.objects.values_list("id", "model__slug", "prompt__gallery_key", "media_name", "sha256")
    )


def test_seed_demo_creates_every_kind_of_demo_model_and_both_galleries(var_dir, settings):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert out.getvalue().strip() == "Demo ready: 17 models, 24 prompts."

    by_kind: dict[tuple[str, str], set[str]] = {}
    for model in ModelEntry.objects.all():
        by_kind.setdefault((model.modality, model.backend_kind), set()).add(model.slug)
        backend_validate(model.backend_kind, model.backend_config, model.modality)
    assert by_kind == {
        ("text", "demo"): {slug for slug, _name, _persona in DEMO_MODELS},
        ("image", "demo_image"): {"demo-stripes", "demo-circles", "demo-mosaic"},
        ("3d", "demo_3d"): {"demo-blob", "demo-blocks", "demo-splat"},
        ("image", "gallery"): {"gallery-gradient", "gallery-waves", "gallery-plaid"},
        ("3d", "gallery"): {"gallery-texel", "gallery-clay", "gallery-sparkle"},
    }
    assert ModelEntry.objects.get(slug="gallery-clay").organization == "Arena Demo"

    three_d = PromptSet.objects.get(slug="demo-gallery-3d")
    image = PromptSet.objects.get(slug="demo-gallery-image")
    assert (three_d.modality, image.modality) == ("3d", "image")
    assert three_d.prompts.count() == image.prompts.count() == 6
    assert list(three_d.prompts.filter(showcase=True).values_list("gallery_key", flat=True)) == ["01-teapot"]
    assert list(image.prompts.filter(showcase=True).values_list("gallery_key", flat=True)) == ["01-harbour"]
    with_images = three_d.prompts.exclude(image="")
    assert sorted(with_images.values_list("gallery_key", flat=True)) == ["05-mug", "06-lamp"]
    assert media_read(with_images.first().image).startswith(b"\x89PNG")

    outputs = GalleryOutput.objects.select_related("model")
    assert outputs.count() == 36 and not outputs.filter(thumbnail_name="").exists()
    formats = {(o.model.slug, o.media_format, o.media_kind) for o in outputs}
    assert formats == {
        ("gallery-texel", "glb", "mesh"),
        ("gallery-clay", "glb", "mesh"),
        ("gallery-sparkle", "splat", "splat"),
        ("gallery-gradient", "png", "image"),
        ("gallery-waves", "png", "image"),
        ("gallery-plaid", "png", "image"),
    }
    textured = {o.model.slug: o.media_meta.get("textured") for o in outputs if o.media_kind == "mesh"}
    assert textured == {"gallery-texel": True, "gallery-clay": False}

    # Written under the (test's) VAR_DIR and media root, never into the repository.
    assert (var_dir / "demo-gallery" / "3d" / "outputs" / "Gallery Sparkle" / "01-teapot.splat").is_file()
    assert len(_stored(Path(settings.MEDIA_ROOT))) == 36 + 36 + 2  # outputs, thumbnails, input images


def test_seed_demo_again_writes_nothing_new(var_dir, settings):
    call_command("seed_demo", stdout=StringIO())
    state, stored = _state(), _stored(Path(settings.MEDIA_ROOT))
    counts = (ModelEntry.objects.count(), PromptSet.objects.count())
    gallery_file = var_dir / "demo-gallery" / "image" / "outputs" / "Gallery Waves" / "02-fox.png"
    written_at = gallery_file.stat().st_mtime_ns

    call_command("seed_demo", stdout=StringIO())
    assert _state() == state
    assert _stored(Path(settings.MEDIA_ROOT)) == stored
    assert (ModelEntry.objects.count(), PromptSet.objects.count()) == counts
    assert gallery_file.stat().st_mtime_ns == written_at  # the gallery on disk is written once


def test_text_only_seeds_no_media(var_dir):
    call_command("seed_demo", "--text-only", stdout=StringIO())
    assert set(ModelEntry.objects.values_list("modality", flat=True)) == {"text"}
    assert not (var_dir / "demo-gallery").exists()


def test_the_demo_gallery_is_the_same_bytes_every_time(tmp_path):
    first = demo_gallery_write(tmp_path / "one")
    second = demo_gallery_write(tmp_path / "two")
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert len(files) == 6 * 3 * 2 + 5 + 2 + 6 + 1  # outputs, 3D texts and images, image texts, marker
    match, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert (mismatch, errors) == ([], []) and len(match) == len(files)


def test_a_demo_gallery_that_cannot_be_imported_leaves_the_rest_of_the_demo_working(settings, caplog):
    settings.ARENA_MAX_MEDIA_BYTES = 2_000  # smaller than any demo mesh or picture
    call_command("seed_demo", stdout=StringIO())
    assert ModelEntry.objects.filter(backend_kind__in=["demo", "demo_image", "demo_3d"]).count() == 11
    assert (
        not GalleryOutput.objects.exists() and not ModelEntry.objects.filter(backend_kind="gallery").exists()
    )
    assert "The demo gallery demo-gallery-3d was not imported" in caplog.text
    assert _stored(Path(settings.MEDIA_ROOT)) == set()
