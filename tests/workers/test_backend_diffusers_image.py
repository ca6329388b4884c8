"""DiffusersImageBackend loading and running real (tiny, random) pipelines (tests/support/tiny_diffusers)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from arena.media import media_inspect
from tests.support.tiny_diffusers import SIZE, tiny_pipeline_build, tiny_pipeline_save
from workers.backends import BackendConfigError, BackendError, MediaRequest, MediaResult, backend_create
from workers.backends.diffusers_image import (
    DiffusersImageBackend,
    device_resolve,
    dtype_resolve,
    pipeline_cache_clear,
)

# Every device this machine has, so the same tests check the GPU path where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROMPT = "a red cat on the sea"
STEPS = 3


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread() -> Iterator[None]:
    # A model this small gains nothing from intra-op threads, and on a busy machine (a parallel test run)
    # OpenMP's spinning threads make each step ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline_save(tmp_path_factory.mktemp("tiny-sd") / "image-model")


def backend(model_dir: Path, **config: Any) -> DiffusersImageBackend:
    made = backend_create("diffusers_image", {"model_path": str(model_dir), "steps": STEPS, **config})
    assert isinstance(made, DiffusersImageBackend)
    return made


def draw(model: DiffusersImageBackend, prompt: str = PROMPT, seed: int | None = 1) -> MediaResult:
    return model.generate(MediaRequest(prompt=prompt, seed=seed), lambda fraction: None)


def pixels(result: MediaResult) -> Image.Image:
    with Image.open(io.BytesIO(result.data)) as img:
        img.load()
        return img


def colours(image: Image.Image) -> int:
    return len(image.getcolors(image.width * image.height) or [])


# --- generation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_generation_returns_a_real_png_of_the_requested_size(model_dir: Path, device: str) -> None:
    result = draw(backend(model_dir, device=device, width=64, height=48))
    assert result.format == "png"
    info = media_inspect(result.data, format_hint=result.format)
    assert (info.format, info.kind) == ("png", "image")
    assert (info.meta["width"], info.meta["height"]) == (64, 48)
    image = pixels(result)
    assert (image.format, image.size, image.mode) == ("PNG", (64, 48), "RGB")
    # Random weights make coloured noise, not a flat fill: the pixels really came out of the pipeline.
    assert colours(image) > 100


def test_without_width_and_height_the_model_draws_at_its_native_size(model_dir: Path) -> None:
    assert pixels(draw(backend(model_dir))).size == (SIZE, SIZE)


def test_same_seed_gives_identical_bytes_and_another_seed_a_different_image(model_dir: Path) -> None:
    model = backend(model_dir)
    first, again, other = draw(model, seed=7), draw(model, seed=7), draw(model, seed=8)
    assert first.data == again.data
    assert first.data != other.data


def test_seed_of_the_config_is_used_when_the_request_has_none(model_dir: Path) -> None:
    pinned = backend(model_dir, seed=7)
    assert draw(pinned, seed=None).data == draw(backend(model_dir), seed=7).data
    # A request's own seed wins over the config's.
    assert draw(pinned, seed=8).data == draw(backend(model_dir), seed=8).data


def test_without_any_seed_each_image_is_different(model_dir: Path) -> None:
    model = backend(model_dir)
    assert draw(model, seed=None).data != draw(model, seed=None).data


def test_another_prompt_gives_another_image(model_dir: Path) -> None:
    model = backend(model_dir)
    assert draw(model, prompt="a blue dog").data != draw(model, prompt="the sky over a house").data


def test_negative_prompt_changes_the_image(model_dir: Path) -> None:
    plain = draw(backend(model_dir))
    steered = draw(backend(model_dir, negative_prompt="a blue dog"))
    assert pixels(steered).size == pixels(plain).size
    assert steered.data != plain.data


def test_progress_rises_with_each_step_and_ends_at_one(model_dir: Path) -> None:
    seen: list[float] = []
    backend(model_dir, steps=4).generate(MediaRequest(prompt=PROMPT, seed=1), seen.append)
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # strictly increasing
    assert len(seen) == 4 + 2  # start, one per denoising step, done
    assert seen[1:-1] == pytest.approx([0.95 * step / 4 for step in range(1, 5)])


@pytest.mark.parametrize(
    ("output_format", "pil_format"), [("webp", "WEBP"), ("jpg", "JPEG"), ("jpeg", "JPEG")]
)
def test_webp_and_jpeg_outputs_are_real_files_of_that_format(
    model_dir: Path, output_format: str, pil_format: str
) -> None:
    result = draw(backend(model_dir, output_format=output_format, width=32, height=40))
    expected = "jpg" if output_format == "jpeg" else output_format
    assert result.format == expected
    info = media_inspect(result.data, format_hint=result.format)
    assert (info.format, info.meta["width"], info.meta["height"]) == (expected, 32, 40)
    assert pixels(result).format == pil_format


def test_empty_prompt_is_a_backend_error(model_dir: Path) -> None:
    with pytest.raises(BackendError, match="prompt is empty"):
        draw(backend(model_dir), prompt="   ")


class Cancelled(Exception):
    pass


def test_an_error_raised_by_the_progress_callback_stops_the_run_unchanged(model_dir: Path) -> None:
    model = backend(model_dir)
    calls: list[float] = []

    def progress(fraction: float) -> None:
        calls.append(fraction)
        if fraction > 0:  # the first denoising step
            raise Cancelled

    with pytest.raises(Cancelled):
        model.generate(MediaRequest(prompt=PROMPT, seed=1), progress)
    assert len(calls) == 2  # the run stopped at the first step
    # The pipeline's lock was released: the next battle on it runs.
    assert pixels(draw(model)).size == (SIZE, SIZE)


# --- concurrency and the per-process cache ----------------------------------------------------------------


def test_two_threads_generating_on_the_same_pipeline_both_succeed_with_their_own_settings(
    model_dir: Path,
) -> None:
    # Two models sharing one checkpoint (one cached pipeline) with different steps and guidance, as two sides
    # of a battle running at once on threads of one worker.
    left, right = backend(model_dir, steps=3, guidance=2.0), backend(model_dir, steps=5, guidance=9.0)
    assert left.load() is right.load()
    expected = {"left": draw(left, seed=1).data, "right": draw(right, seed=2).data}
    start = threading.Barrier(2)
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def run(side: str, model: DiffusersImageBackend, seed: int) -> None:
        start.wait()
        try:
            # Sleeping in the progress callback hands the GIL over at every step, so unserialised runs would
            # interleave their steps.
            result = model.generate(MediaRequest(prompt=PROMPT, seed=seed), lambda fraction: time.sleep(0.01))
            results[side] = result.data
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("left", left, 1)),
        threading.Thread(target=run, args=("right", right, 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    # Byte-identical to the runs made one after the other: neither side disturbed the other's scheduler state.
    assert results == expected


def test_threads_loading_the_same_pipeline_at_once_share_one_load(model_dir: Path) -> None:
    pipeline_cache_clear()  # other tests loaded it already
    start = threading.Barrier(3)
    loaded: list[object] = []

    def load() -> None:
        start.wait()
        loaded.append(backend(model_dir).load().pipeline)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(loaded) == 3
    assert all(pipeline is loaded[0] for pipeline in loaded)


def test_another_dtype_is_loaded_separately_and_runs_in_it(model_dir: Path) -> None:
    full, half = backend(model_dir, dtype="float32"), backend(model_dir, dtype="bfloat16")
    assert full.load() is not half.load()
    assert half.load().pipeline.unet.dtype == torch.bfloat16
    assert half.load().pipeline.text_encoder.dtype == torch.bfloat16
    assert pixels(draw(half)).size == (SIZE, SIZE)


def test_cpu_device_loads_and_runs_the_pipeline_on_the_cpu_in_float32(model_dir: Path) -> None:
    model = backend(model_dir, device="cpu")
    loaded = model.load()
    assert loaded.device == torch.device("cpu")
    assert loaded.dtype == torch.float32  # "auto" on CPU
    assert loaded.pipeline.unet.device.type == "cpu"
    assert loaded.pipeline.unet.dtype == torch.float32


def test_auto_device_and_dtype_are_cuda_float16_when_available_else_cpu_float32(model_dir: Path) -> None:
    cuda = torch.cuda.is_available()
    device = device_resolve("auto")
    assert device.type == ("cuda" if cuda else "cpu")
    assert dtype_resolve("auto", device) == (torch.float16 if cuda else torch.float32)
    loaded = backend(model_dir).load()
    assert loaded.pipeline.unet.device.type == device.type
    assert loaded.pipeline.unet.dtype == loaded.dtype


def test_cuda_device_this_machine_lacks_is_a_backend_error(model_dir: Path) -> None:
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or cuda:0 on a CPU-only machine
    with pytest.raises(BackendError, match="no CUDA device"):
        draw(backend(model_dir, device=missing))


# --- broken model directories ------------------------------------------------------------------------------


def test_missing_model_directory_is_a_backend_error_that_hides_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "secret-model-name"
    with pytest.raises(BackendError, match="model files were not found") as caught:
        draw(backend(missing))
    assert "secret-model-name" not in str(caught.value)


def test_directory_without_a_pipeline_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(BackendError, match="model files on this worker are incomplete"):
        draw(backend(tmp_path / "empty-model"))


def test_broken_model_index_is_a_backend_error_that_hides_the_path(model_dir: Path, tmp_path: Path) -> None:
    broken = _copy(model_dir, tmp_path / "secret-broken")
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", ')
    with pytest.raises(BackendError, match=r"^The model could not be loaded \(\w+\)\.$") as caught:
        draw(backend(broken))
    assert "secret" not in str(caught.value)


def test_component_config_naming_an_unknown_class_is_a_backend_error(model_dir: Path, tmp_path: Path) -> None:
    broken = _copy(model_dir, tmp_path / "odd-model")
    index = json.loads((broken / "model_index.json").read_text())
    index["unet"] = ["diffusers", "NoSuchUNetModel"]
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(BackendError, match=r"^The model could not be loaded"):
        draw(backend(broken))


def test_truncated_weights_are_a_backend_error(model_dir: Path, tmp_path: Path) -> None:
    broken = _copy(model_dir, tmp_path / "truncated-model")
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BackendError, match=r"^The model could not be loaded"):
        draw(backend(broken))


def test_failed_load_is_not_cached_and_succeeds_once_the_files_appear(tmp_path: Path) -> None:
    directory = tmp_path / "late-model"
    directory.mkdir()
    model = backend(directory)
    with pytest.raises(BackendError):
        model.load()
    tiny_pipeline_save(directory)
    assert pixels(draw(model)).size == (SIZE, SIZE)


def test_pixels_that_overflowed_are_a_backend_error_not_a_black_image(tmp_path: Path) -> None:
    pipeline = tiny_pipeline_build()
    with torch.no_grad():
        pipeline.vae.decoder.conv_out.bias.fill_(float("nan"))  # what float16 overflow in a VAE looks like
    pipeline.save_pretrained(tmp_path / "nan-model")
    with pytest.raises(BackendError, match="broken image"):
        draw(backend(tmp_path / "nan-model"))


def _copy(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


# --- the safety checker a checkpoint ships -----------------------------------------------------------------


@pytest.fixture(scope="module")
def flagging_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline_save(tmp_path_factory.mktemp("tiny-sd") / "flagging", safety_checker="flag")


def test_image_the_safety_checker_flags_is_a_backend_error_not_a_black_square(
    flagging_model_dir: Path,
) -> None:
    with pytest.raises(BackendError, match="safety filter withheld this image"):
        draw(backend(flagging_model_dir))


def test_safety_checker_false_loads_the_pipeline_without_it(flagging_model_dir: Path) -> None:
    model = backend(flagging_model_dir, safety_checker=False)
    assert model.load().pipeline.safety_checker is None
    assert pixels(draw(model)).size == (SIZE, SIZE)


def test_image_the_safety_checker_passes_is_returned(tmp_path: Path) -> None:
    directory = tiny_pipeline_save(tmp_path / "passing", safety_checker="pass")
    model = backend(directory)
    assert model.load().pipeline.safety_checker is not None
    assert colours(pixels(draw(model))) > 100


# --- configuration -----------------------------------------------------------------------------------------


def test_valid_config_gets_its_defaults() -> None:
    config = DiffusersImageBackend.validate_config({"model_path": "/models/x"})
    assert config == {
        "model_path": "/models/x",
        "steps": 30,
        "guidance": 7.5,
        "device": "auto",
        "dtype": "auto",
        "output_format": "png",
        "safety_checker": True,
    }


def test_backend_declares_text_to_image() -> None:
    assert DiffusersImageBackend.modalities == frozenset({"image"})
    assert DiffusersImageBackend.inputs == frozenset({"text"})


def test_validating_a_config_does_not_import_torch() -> None:
    # The admin validates configs in the web process, which has no torch installed.
    code = (
        "import sys; from workers.backends import backend_validate; "
        "backend_validate('diffusers_image', {'model_path': '/models/x', 'dtype': 'float16', 'width': 512}, "
        "'image'); "
        "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), 'torch imported'"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "model_path"),
        ({"model_path": ""}, "model_path"),
        ({"model_path": 42}, "model_path"),
        ({"model_path": "/m", "stpes": 20}, "stpes"),
        ({"model_path": "/m", "prompt": "x"}, "prompt"),
        ({"model_path": "/m", "steps": 0}, "steps"),
        ({"model_path": "/m", "steps": "20"}, "steps"),
        ({"model_path": "/m", "steps": 2.5}, "steps"),
        ({"model_path": "/m", "steps": True}, "steps"),
        ({"model_path": "/m", "guidance": -1}, "guidance"),
        ({"model_path": "/m", "guidance": "high"}, "guidance"),
        ({"model_path": "/m", "guidance": float("nan")}, "guidance"),
        ({"model_path": "/m", "width": 500}, "width"),
        ({"model_path": "/m", "width": 0}, "width"),
        ({"model_path": "/m", "height": 513}, "height"),
        ({"model_path": "/m", "height": "512"}, "height"),
        ({"model_path": "/m", "height": 8192}, "height"),
        ({"model_path": "/m", "negative_prompt": ["blurry"]}, "negative_prompt"),
        ({"model_path": "/m", "dtype": "float8"}, "dtype"),
        ({"model_path": "/m", "dtype": "half"}, "dtype"),
        ({"model_path": "/m", "device": "gpu"}, "device"),
        ({"model_path": "/m", "device": "cuda:x"}, "device"),
        ({"model_path": "/m", "output_format": "gif"}, "output_format"),
        ({"model_path": "/m", "safety_checker": "off"}, "safety_checker"),
        ({"model_path": "/m", "seed": "lucky"}, "seed"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(BackendConfigError, match=field):
        DiffusersImageBackend.validate_config(config)
