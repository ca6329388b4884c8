"""The demo image and 3D backends: deterministic, different per style, valid files, strict configs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from arena.media import media_inspect
from tests.support.media import png_bytes
from workers.backends import BackendConfigError, BackendError, MediaRequest, backend_create, backend_validate
from workers.backends.demo_media import IMAGE_STYLES, SHAPE_STYLES, Demo3DBackend, DemoImageBackend


def _generate(kind: str, config: dict, request: MediaRequest) -> tuple[bytes, str, list[float]]:
    steps: list[float] = []
    result = backend_create(kind, config).generate(request, steps.append)
    return result.data, result.format, steps


@pytest.mark.parametrize("style", IMAGE_STYLES)
def test_each_image_style_gives_the_same_valid_png_for_the_same_prompt(style):
    request = MediaRequest(prompt="A lighthouse in a storm")
    data, fmt, steps = _generate("demo_image", {"style": style}, request)
    assert fmt == "png"
    info = media_inspect(data, format_hint=fmt)
    assert (info.kind, info.meta["width"], info.meta["height"]) == ("image", 256, 256)
    assert data == _generate("demo_image", {"style": style}, request)[0]
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps) and len(steps) >= 4


def test_image_styles_prompts_and_seeds_change_the_picture():
    request = MediaRequest(prompt="A lighthouse in a storm")
    by_style = {_generate("demo_image", {"style": s}, request)[0] for s in IMAGE_STYLES}
    assert len(by_style) == len(IMAGE_STYLES)
    other_prompt = _generate("demo_image", {"style": "circles"}, MediaRequest(prompt="A quiet harbour"))[0]
    assert other_prompt != _generate("demo_image", {"style": "circles"}, request)[0]
    seeded = _generate("demo_image", {"style": "circles", "seed": 7}, request)[0]
    assert seeded != _generate("demo_image", {"style": "circles"}, request)[0]


@pytest.mark.parametrize(
    ("config", "fmt", "kind", "textured"),
    [
        ({"style": "blob"}, "glb", "mesh", True),
        ({"style": "blob", "texture": "image"}, "glb", "mesh", True),
        ({"style": "blocks"}, "glb", "mesh", True),
        ({"style": "twist", "texture": "none"}, "glb", "mesh", False),
        ({"style": "splat"}, "splat", "splat", None),
    ],
    ids=["blob", "blob-texture", "blocks", "twist-plain", "splat"],
)
def test_each_3d_style_gives_the_same_valid_file_for_the_same_prompt(config, fmt, kind, textured):
    request = MediaRequest(prompt="A small red dragon")
    data, got_format, steps = _generate("demo_3d", config, request)
    info = media_inspect(data, format_hint=got_format)
    assert (got_format, info.kind) == (fmt, kind)
    if kind == "mesh":
        assert info.meta["faces"] > 10 and info.meta["textured"] is textured
    else:
        assert info.meta["splats"] == 6000
    assert data == _generate("demo_3d", config, request)[0]
    assert steps[-1] == 1.0


def test_3d_styles_differ_and_an_input_image_changes_the_object():
    request = MediaRequest(prompt="A small red dragon")
    outputs = {_generate("demo_3d", {"style": s}, request)[0] for s in SHAPE_STYLES}
    assert len(outputs) == len(SHAPE_STYLES)
    from_image = MediaRequest(image=png_bytes("blue"))
    data, fmt, _ = _generate("demo_3d", {"style": "blob"}, from_image)
    assert media_inspect(data, format_hint=fmt).kind == "mesh"
    assert data == _generate("demo_3d", {"style": "blob"}, from_image)[0]
    assert data != _generate("demo_3d", {"style": "blob"}, MediaRequest(image=png_bytes("yellow")))[0]


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("demo_image", {"style": "cubist"}, "style must be one of"),
        ("demo_image", {"colour": "red"}, "unknown field 'colour'"),
        ("demo_image", {"seed": "seven"}, "seed must be an integer"),
        ("demo_3d", {"style": "teapot"}, "style must be one of"),
        ("demo_3d", {"texture": "marble"}, "texture must be one of"),
        ("demo_3d", {"style": "splat", "texture": "image"}, "always coloured"),
        ("demo_3d", {"shape": "blob"}, "unknown field 'shape'"),
    ],
)
def test_bad_configs_are_refused(kind, config, message):
    with pytest.raises(BackendConfigError, match=message):
        backend_create(kind, config)


def test_the_backends_declare_their_modality_inputs_and_demo_flag():
    assert (DemoImageBackend.modalities, DemoImageBackend.inputs) == ({"image"}, {"text"})
    assert (Demo3DBackend.modalities, Demo3DBackend.inputs) == ({"3d"}, {"text", "image"})
    assert DemoImageBackend.demo and Demo3DBackend.demo
    with pytest.raises(BackendConfigError, match="not 3d"):
        backend_validate("demo_image", {}, "3d")
    assert backend_validate("demo_3d", {"style": "twist"}, "3d") == {"style": "twist"}


def test_an_empty_request_fails_with_a_message_for_the_voter():
    with pytest.raises(BackendError, match="prompt is empty"):
        _generate("demo_image", {}, MediaRequest(prompt="  "))
    with pytest.raises(BackendError, match="text prompt or an input image"):
        _generate("demo_3d", {}, MediaRequest())


def test_the_demo_media_backends_import_without_torch():
    code = (
        "import sys, django\n"
        "django.setup()\n"
        "import workers.backends.demo_media, arena.thumbnails, arena.gallery\n"
        "import arena.demo_gallery, arena.demo\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
