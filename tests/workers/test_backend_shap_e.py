"""ShapEBackend loading and running real (tiny, random) Shap-E pipelines (tests/support/tiny_shap_e), text to
3D and image to 3D, down to a GLB that arena.media accepts as a coloured mesh."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from arena.media import media_inspect
from tests.support.tiny_shap_e import tiny_shap_e_save
from workers.backends import (
    BackendConfigError,
    BackendError,
    MediaRequest,
    MediaResult,
    backend_class,
    backend_create,
    backend_validate,
)
from workers.backends.shap_e import DIFFUSION_SHARE, ShapEBackend, pipeline_cache_clear

# diffusers' Heun scheduler builds its sigmas with np.array(tensor), which numpy 2 warns about on every call.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

# Every device this machine has, so the same tests check the GPU path where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROMPT = "a red chair"
STEPS = 2  # Heun: 3 calls of the prior
GRID = 16  # marching cubes over 16^3: a few thousand faces, well under a second on a CPU


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread() -> Iterator[None]:
    # A model this small gains nothing from intra-op threads, and on a busy machine (a parallel test run)
    # OpenMP's spinning threads make each step many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    pipeline_cache_clear()


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_shap_e_save(tmp_path_factory.mktemp("shap-e-text"), "text")


@pytest.fixture(scope="module")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_shap_e_save(tmp_path_factory.mktemp("shap-e-image"), "image")


@pytest.fixture(scope="module")
def empty_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_shap_e_save(tmp_path_factory.mktemp("shap-e-empty"), "text", empty_surface=True)


def backend(model_dir: Path, **config: Any) -> ShapEBackend:
    made = backend_create(
        "shap_e", {"model_path": str(model_dir), "steps": STEPS, "grid_size": GRID, **config}
    )
    assert isinstance(made, ShapEBackend)
    return made


def png(colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (48, 40), colour).save(out, format=fmt)
    return out.getvalue()


def make(model: ShapEBackend, seed: int | None = 1, **request: Any) -> MediaResult:
    if model.config["mode"] == "text":
        request.setdefault("prompt", PROMPT)
    else:
        request.setdefault("image", png())
    return model.generate(MediaRequest(seed=seed, **request), lambda fraction: None)


def assert_coloured_mesh(result: MediaResult) -> dict[str, Any]:
    assert result.format == "glb"
    info = media_inspect(result.data, format_hint=result.format)
    assert (info.format, info.kind) == ("glb", "mesh")
    assert info.meta["vertices"] > 0 and info.meta["faces"] > 0
    assert info.meta["textured"] is True
    return info.meta


# --- generation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_text_to_3d_makes_a_coloured_glb_mesh(text_model: Path, device: str) -> None:
    assert_coloured_mesh(make(backend(text_model, device=device)))


@pytest.mark.parametrize("device", DEVICES)
def test_image_to_3d_makes_a_coloured_glb_mesh(image_model: Path, device: str) -> None:
    assert_coloured_mesh(make(backend(image_model, mode="image", device=device)))


@pytest.mark.parametrize(
    "image",
    [png(), png((10, 200, 10, 120), mode="RGBA"), png(fmt="JPEG"), png(fmt="WEBP"), png((3,), mode="P")],
    ids=["png", "png-with-alpha", "jpeg", "webp", "palette"],
)
def test_image_to_3d_takes_every_input_image_kind(image_model: Path, image: bytes) -> None:
    assert_coloured_mesh(make(backend(image_model, mode="image"), image=image))


def test_same_seed_gives_identical_bytes_and_another_seed_another_mesh(text_model: Path) -> None:
    model = backend(text_model)
    first, again, other = make(model, seed=7), make(model, seed=7), make(model, seed=8)
    assert first.data == again.data
    assert first.data != other.data


def test_seed_of_the_config_is_used_when_the_request_has_none(text_model: Path) -> None:
    assert make(backend(text_model, seed=7), seed=None).data == make(backend(text_model), seed=7).data


def test_without_any_seed_each_mesh_is_different(text_model: Path) -> None:
    model = backend(text_model)
    assert make(model, seed=None).data != make(model, seed=None).data


def test_the_prompt_and_the_image_steer_the_mesh(text_model: Path, image_model: Path) -> None:
    text = backend(text_model)
    assert make(text, prompt="a chair").data != make(text, prompt="the table").data
    image = backend(image_model, mode="image")
    assert make(image, image=png((255, 0, 0))).data != make(image, image=png((0, 0, 255))).data


def test_grid_size_sets_the_mesh_detail(text_model: Path) -> None:
    coarse = assert_coloured_mesh(make(backend(text_model, grid_size=8)))
    fine = assert_coloured_mesh(make(backend(text_model, grid_size=24)))
    assert fine["faces"] > 2 * coarse["faces"]


def test_progress_follows_the_prior_steps_then_the_mesh_decode_and_ends_at_one(text_model: Path) -> None:
    fractions: list[float] = []
    backend(text_model, steps=3).generate(MediaRequest(prompt=PROMPT, seed=1), fractions.append)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    # Heun's 3 steps run the prior 5 times; each call reports, the last reaching the diffusion share.
    diffusion = [f for f in fractions if 0.0 < f <= DIFFUSION_SHARE]
    assert len(diffusion) == 5
    assert diffusion[-1] == pytest.approx(DIFFUSION_SHARE)
    assert any(DIFFUSION_SHARE < f < 1.0 for f in fractions)  # the mesh decode


def test_an_error_raised_by_the_progress_callback_stops_the_run_unchanged(text_model: Path) -> None:
    class Cancelled(Exception):
        pass

    calls = []

    def progress(fraction: float) -> None:
        calls.append(fraction)
        if len(calls) == 3:
            raise Cancelled("the battle was abandoned")

    model = backend(text_model)
    with pytest.raises(Cancelled):
        model.generate(MediaRequest(prompt=PROMPT, seed=1), progress)
    # The hooks are gone and the lock is free: the same pipeline serves the next battle normally.
    loaded = model.load()
    assert not loaded.pipeline.prior._forward_hooks
    assert not loaded.pipeline.shap_e_renderer.mlp._forward_hooks
    assert not loaded.lock.locked()
    assert_coloured_mesh(make(model))


def test_empty_surface_is_a_clean_backend_error(empty_model: Path) -> None:
    with pytest.raises(BackendError, match=r"^The model produced an empty mesh\.$"):
        make(backend(empty_model))


def test_empty_prompt_is_a_backend_error(text_model: Path) -> None:
    with pytest.raises(BackendError, match="the prompt is empty"):
        make(backend(text_model), prompt="   ")


def test_image_mode_without_an_image_is_a_backend_error(image_model: Path) -> None:
    with pytest.raises(BackendError, match="no image was given"):
        make(backend(image_model, mode="image"), image=None, prompt=PROMPT)


def test_unreadable_input_image_is_a_backend_error(image_model: Path) -> None:
    with pytest.raises(BackendError, match="input image could not be read"):
        make(backend(image_model, mode="image"), image=b"\x89PNG\r\n\x1a\nnot really")


def test_two_threads_on_the_same_pipeline_get_what_they_would_get_alone(text_model: Path) -> None:
    model = backend(text_model)
    alone = {seed: make(model, seed=seed).data for seed in (3, 4)}
    together: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            together[seed] = make(model, seed=seed).data
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert together == alone


# --- loading -----------------------------------------------------------------------------------------------


def test_pipelines_are_cached_per_process_by_path_mode_device_and_dtype(text_model: Path) -> None:
    first = backend(text_model).load()
    assert backend(text_model, steps=5, guidance=2.0).load() is first  # run settings share the pipeline
    assert backend(text_model, dtype="bfloat16", device="cpu").load() is not first


def test_auto_device_and_dtype_are_cuda_float16_when_available_else_cpu_float32(text_model: Path) -> None:
    loaded = backend(text_model).load()
    if torch.cuda.is_available():
        assert (loaded.device.type, loaded.dtype) == ("cuda", torch.float16)
    else:
        assert (loaded.device.type, loaded.dtype) == ("cpu", torch.float32)
    assert loaded.pipeline.prior.dtype == loaded.dtype
    assert loaded.pipeline.prior.device.type == loaded.device.type


def test_cpu_device_runs_on_the_cpu_in_float32(text_model: Path) -> None:
    model = backend(text_model, device="cpu")
    loaded = model.load()
    assert (loaded.device.type, loaded.dtype) == ("cpu", torch.float32)
    assert loaded.pipeline.shap_e_renderer.mlp.dtype == torch.float32
    assert_coloured_mesh(make(model))


def test_cuda_device_this_machine_lacks_is_a_backend_error(text_model: Path) -> None:
    index = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(BackendError, match="no CUDA device"):
        make(backend(text_model, device=f"cuda:{index}"))


def test_missing_model_directory_is_a_backend_error_that_hides_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "openai-shap-e-secret"
    with pytest.raises(BackendError) as caught:
        make(backend(missing))
    assert "secret" not in str(caught.value) and str(tmp_path) not in str(caught.value)


def test_pipeline_of_the_other_mode_is_a_backend_error(text_model: Path, image_model: Path) -> None:
    with pytest.raises(BackendError, match="do not match its configuration"):
        make(backend(image_model, mode="text"))
    with pytest.raises(BackendError, match="do not match its configuration"):
        make(backend(text_model, mode="image"))


def test_directory_without_model_index_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="incomplete"):
        make(backend(tmp_path))


def test_damaged_weights_are_a_backend_error_that_hides_the_path(text_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-shap-e"
    shutil.copytree(text_model, broken)
    (weights,) = (broken / "prior").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BackendError, match=r"^The model could not be loaded \(\w+\)\.$") as caught:
        make(backend(broken))
    assert str(broken) not in str(caught.value)


# --- config ------------------------------------------------------------------------------------------------


def test_valid_config_gets_its_defaults() -> None:
    text = ShapEBackend.validate_config({"model_path": "/models/shap-e"})
    assert text == {
        "model_path": "/models/shap-e",
        "mode": "text",
        "steps": 64,
        "guidance": 15.0,
        "grid_size": 128,
        "device": "auto",
        "dtype": "auto",
    }
    image = ShapEBackend.validate_config({"model_path": "/models/shap-e-img2img", "mode": "image", "seed": 3})
    assert (image["mode"], image["guidance"], image["seed"]) == ("image", 3.0, 3)


def test_accepted_inputs_follow_the_mode() -> None:
    assert ShapEBackend.accepted_inputs({"model_path": "/m"}) == frozenset({"text"})
    assert ShapEBackend.accepted_inputs({"model_path": "/m", "mode": "text"}) == frozenset({"text"})
    assert ShapEBackend.accepted_inputs({"model_path": "/m", "mode": "image"}) == frozenset({"image"})
    with pytest.raises(BackendConfigError, match="mode"):
        ShapEBackend.accepted_inputs({"model_path": "/m", "mode": "video"})


def test_backend_is_registered_for_3d_only() -> None:
    assert backend_class("shap_e") is ShapEBackend
    assert backend_validate("shap_e", {"model_path": "/m"}, "3d")["mode"] == "text"
    with pytest.raises(BackendConfigError, match="not image"):
        backend_validate("shap_e", {"model_path": "/m"}, "image")


def test_validating_a_config_does_not_import_torch() -> None:
    code = (
        "import sys; from workers.backends import backend_validate; "
        "backend_validate('shap_e', {'model_path': '/models/x', 'mode': 'image', 'dtype': 'float16'}, '3d'); "
        "assert not {'torch', 'diffusers', 'transformers', 'trimesh'} & set(sys.modules), 'heavy import'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "config, field",
    [
        ({}, "model_path"),
        ({"model_path": ""}, "model_path"),
        ({"model_path": "/m", "mode": "3d"}, "mode"),
        ({"model_path": "/m", "mode": ["text"]}, "mode"),
        ({"model_path": "/m", "steps": 0}, "steps"),
        ({"model_path": "/m", "steps": True}, "steps"),
        ({"model_path": "/m", "steps": 2.5}, "steps"),
        ({"model_path": "/m", "guidance": -1}, "guidance"),
        ({"model_path": "/m", "guidance": "high"}, "guidance"),
        ({"model_path": "/m", "guidance": float("nan")}, "guidance"),
        ({"model_path": "/m", "grid_size": 4}, "grid_size"),
        ({"model_path": "/m", "grid_size": 1024}, "grid_size"),
        ({"model_path": "/m", "device": "tpu"}, "device"),
        ({"model_path": "/m", "dtype": "float64"}, "dtype"),
        ({"model_path": "/m", "seed": "7"}, "seed"),
        ({"model_path": "/m", "frame_size": 64}, "frame_size"),  # renders only, never meshes
        ({"model_path": "/m", "dtpye": "float16"}, "dtpye"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(BackendConfigError, match=field):
        ShapEBackend.validate_config(config)


def test_saved_pipeline_is_what_the_backend_expects(text_model: Path, image_model: Path) -> None:
    # The fixture really is a diffusers save_pretrained directory of the class each mode loads.
    assert json.loads((text_model / "model_index.json").read_text())["_class_name"] == "ShapEPipeline"
    assert json.loads((image_model / "model_index.json").read_text())["_class_name"] == "ShapEImg2ImgPipeline"
