"""Text-to-image with a local Hugging Face diffusers pipeline (Stable Diffusion, SDXL, ...).

The model is a directory written by `save_pretrained` (model_index.json plus one folder per component); it is
loaded with `AutoPipelineForText2Image` from local files only, once per process and (path, device, dtype).
torch and diffusers are imported on first use, so the web process validates these configs (the admin)
without them. Messages of BackendError are kept for staff (voters see a neutral text by kind); they never hold
the model's path, and the details go to the worker's log and the chained exception. An image the pipeline's
safety checker withholds is this prompt's fault (InputRejected): it does not count against the model's health.
"""

from __future__ import annotations

import io
import logging
import math
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import loading
from .base import (
    BackendConfigError,
    BackendError,
    InputRejected,
    MediaBackend,
    MediaRequest,
    MediaResult,
    ProgressCallback,
)
from .loading import LoadCache

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CONFIG_FIELDS = frozenset(
    {
        "model_path",
        "steps",
        "guidance",
        "width",
        "height",
        "negative_prompt",
        "dtype",
        "device",
        "output_format",
        "safety_checker",
    }
)
DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DTYPE_NAMES = ("float32", "float16", "bfloat16")
OUTPUT_FORMATS = ("png", "webp", "jpg")
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 7.5
MAX_STEPS = 1000  # schedulers are trained on 1000 timesteps; more is a typo
MAX_SIDE = 4096
# Denoising steps fill the progress bar up to here; decoding the latents and encoding the file take the rest.
DENOISE_SHARE = 0.95
WEBP_QUALITY = 90
JPEG_QUALITY = 95


class DiffusersImageBackend(MediaBackend):
    """Config: `model_path` (local directory saved with save_pretrained, required), `steps` (denoising
    steps, default 30), `guidance` (classifier-free guidance scale, default 7.5), `width` / `height`
    (pixels, multiples of 8; default: the model's native size), `negative_prompt`, `seed`, `dtype` ("auto" |
    "float16" | "bfloat16" | "float32"; auto is float16 on CUDA, float32 on CPU), `device` ("auto" | "cpu" |
    "cuda" | "cuda:N"; auto is CUDA when present), `output_format` ("png" | "webp" | "jpg", default png),
    `safety_checker` (default true: keep the checker a checkpoint ships, and fail an image it flags instead
    of showing its black square; false loads the pipeline without it)."""

    kind = "diffusers_image"
    modalities: ClassVar[frozenset[str]] = frozenset({"image"})
    inputs: ClassVar[frozenset[str]] = frozenset({"text"})
    config_fields: ClassVar[frozenset[str]] = CONFIG_FIELDS

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().validate_config(config)
        model_path = cleaned.get("model_path")
        if not isinstance(model_path, str) or not model_path.strip():
            raise BackendConfigError(
                "model_path is required: the local directory holding the pipeline saved with save_pretrained"
            )
        steps = cleaned.setdefault("steps", DEFAULT_STEPS)
        if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
            raise BackendConfigError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
        guidance = cleaned.setdefault("guidance", DEFAULT_GUIDANCE)
        if (
            isinstance(guidance, bool)
            or not isinstance(guidance, int | float)
            or not math.isfinite(guidance)
            or guidance < 0
        ):
            raise BackendConfigError(f"guidance must be a number of at least 0, got {guidance!r}")
        cleaned["guidance"] = float(guidance)
        for name in ("width", "height"):
            value = cleaned.get(name)
            if value is None:
                continue
            if not _is_int(value) or value <= 0 or value % 8 or value > MAX_SIDE:
                raise BackendConfigError(
                    f"{name} must be a multiple of 8 from 8 to {MAX_SIDE} pixels, got {value!r}"
                )
        negative = cleaned.get("negative_prompt")
        if negative is not None and not isinstance(negative, str):
            raise BackendConfigError(f"negative_prompt must be a string, got {negative!r}")
        device = cleaned.setdefault("device", "auto")
        if not isinstance(device, str) or not DEVICE_RE.match(device):
            raise BackendConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        dtype = cleaned.setdefault("dtype", "auto")
        if dtype != "auto" and (not isinstance(dtype, str) or dtype not in DTYPE_NAMES):
            raise BackendConfigError(f"dtype must be 'auto' or one of {list(DTYPE_NAMES)}, got {dtype!r}")
        output_format = cleaned.setdefault("output_format", "png")
        if output_format == "jpeg":
            output_format = cleaned["output_format"] = "jpg"
        if output_format not in OUTPUT_FORMATS:
            raise BackendConfigError(
                f"output_format must be one of {list(OUTPUT_FORMATS)}, got {output_format!r}"
            )
        safety = cleaned.setdefault("safety_checker", True)
        if not isinstance(safety, bool):
            raise BackendConfigError(f"safety_checker must be true or false, got {safety!r}")
        return cleaned

    def load(self) -> LoadedPipeline:
        """The loaded pipeline for this config, from the process cache. A worker may call it at start to warm
        up, so the first battle does not pay for the load."""
        return pipeline_get(self.config)

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        prompt = request.prompt.strip()
        if not prompt:
            raise BackendError("This model draws from a text prompt; the prompt is empty.")
        progress(0.0)
        loaded = self.load()
        seed = request.seed if request.seed is not None else self.config.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**63)
        image = image_make(loaded, self.config, prompt, seed, progress)
        data = image_encode(image, self.config["output_format"])
        progress(1.0)
        return MediaResult(data=data, format=self.config["output_format"])


def _is_int(value: Any) -> bool:
    # bool is an int in Python; `steps: true` is a mistake, not one step.
    return isinstance(value, int) and not isinstance(value, bool)


# --- the torch side: loading and running pipelines ----------------------------------------------------------


@dataclass(frozen=True)
class LoadedPipeline:
    pipeline: Any  # a diffusers DiffusionPipeline
    device: torch.device
    dtype: torch.dtype
    # A diffusers pipeline is not thread-safe: every call resets its scheduler's timesteps and keeps per-call
    # state on the pipeline object (guidance scale, step counters), so two battle sides generating at once on
    # threads of one worker would corrupt each other's run. Calls on one pipeline are serialised with this
    # lock; different pipelines still run in parallel.
    lock: threading.Lock
    call_parameters: frozenset[str]  # what the pipeline's __call__ accepts (families differ)


PipelineKey = tuple[str, str, str, bool]  # (resolved path, device, dtype name, safety checker kept)

_pipelines: LoadCache[PipelineKey, LoadedPipeline] = LoadCache()


def pipeline_get(config: Mapping[str, Any]) -> LoadedPipeline:
    """The loaded pipeline for a validated DiffusersImageBackend config, from the process cache."""
    path = loading.model_dir(config)
    device = device_resolve(config["device"])
    return pipeline_load(path, device, dtype_resolve(config["dtype"], device), config["safety_checker"])


def device_resolve(device: str) -> torch.device:
    return loading.device_resolve(device)


def dtype_resolve(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is float16 on a GPU (what Stable Diffusion checkpoints are published in), float32 on a CPU."""
    return loading.half_on_gpu(dtype, device)


def pipeline_load(
    path: Path, device: torch.device, dtype: torch.dtype, safety_checker: bool
) -> LoadedPipeline:
    """Load once per process and key (see loading.LoadCache)."""
    key: PipelineKey = (str(path.resolve()), str(device), loading.dtype_name(dtype), safety_checker)
    return _pipelines.get(key, lambda: _pipeline_read(path, device, dtype, safety_checker))


def pipeline_cache_clear() -> None:
    """Forget every loaded pipeline (tests; a worker freeing memory). Generations in flight keep theirs."""
    _pipelines.clear()


def _pipeline_read(
    path: Path, device: torch.device, dtype: torch.dtype, safety_checker: bool
) -> LoadedPipeline:
    import inspect

    import torch
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline

    if not (path / "model_index.json").is_file():
        logger.error("no model_index.json in %s: not a diffusers pipeline saved with save_pretrained", path)
        raise BackendError("The model files on this worker are incomplete.")
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True, "trust_remote_code": False}
    if not safety_checker:
        kwargs["safety_checker"] = None  # pipelines without one ignore this
    try:
        try:
            pipeline = AutoPipelineForText2Image.from_pretrained(path, **kwargs)
        except ValueError as exc:
            if "AutoPipeline can't find" not in str(exc):
                raise
            # A pipeline family AutoPipeline does not map: load the class model_index.json names.
            pipeline = DiffusionPipeline.from_pretrained(path, **kwargs)
        pipeline = pipeline.to(device)
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        logger.error("not enough GPU memory to load the diffusers pipeline at %s", path, exc_info=True)
        raise BackendError("Not enough GPU memory to load the model.") from exc
    except Exception as exc:
        # Broken JSON, missing or mismatched weights, an unknown component class: the exception text names
        # files and the model, so it goes to the log and the chain, and the voter sees only its type.
        logger.error("could not load the diffusers pipeline at %s", path, exc_info=True)
        raise BackendError(f"The model could not be loaded ({type(exc).__name__}).") from exc
    pipeline.set_progress_bar_config(disable=True)
    parameters = frozenset(inspect.signature(pipeline.__call__).parameters)
    if "callback_on_step_end" not in parameters:
        logger.warning("the pipeline at %s reports no progress (no callback_on_step_end)", path)
    return LoadedPipeline(pipeline, device, dtype, threading.Lock(), parameters)


class _StepProgress:
    """The pipeline's callback_on_step_end: reports each finished denoising step. An exception the caller's
    progress callback raises (a cancelled battle) is remembered, so it surfaces unchanged, not as a failure of
    the model."""

    def __init__(self, progress: ProgressCallback, steps: int) -> None:
        self.progress = progress
        self.steps = steps
        self.error: BaseException | None = None

    def __call__(
        self, pipeline: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        # Second-order schedulers (Heun, DPM2) run about two model steps per requested step; the pipeline
        # counts the timesteps it really runs.
        total = getattr(pipeline, "_num_timesteps", None) or self.steps
        try:
            self.progress(DENOISE_SHARE * min(step + 1, total) / total)
        except BaseException as exc:
            self.error = exc
            raise
        return callback_kwargs


def image_make(
    loaded: LoadedPipeline, config: Mapping[str, Any], prompt: str, seed: int, progress: ProgressCallback
) -> Any:
    """Run the pipeline once; returns a PIL image. Deterministic for a seed on a given device and dtype: the
    noise comes from a private torch.Generator, never the global RNG other threads draw from."""
    import numpy as np
    import torch
    from PIL import Image

    accepts = loaded.call_parameters
    kwargs: dict[str, Any] = {"prompt": prompt, "num_inference_steps": config["steps"], "output_type": "np"}
    if "guidance_scale" in accepts:
        kwargs["guidance_scale"] = config["guidance"]
    for name in ("width", "height"):
        if config.get(name) is not None:
            kwargs[name] = config[name]
    if config.get("negative_prompt"):
        if "negative_prompt" not in accepts:
            raise BackendError(
                "This model does not take a negative prompt; remove negative_prompt from its config."
            )
        kwargs["negative_prompt"] = config["negative_prompt"]
    step_progress = _StepProgress(progress, config["steps"])
    if "callback_on_step_end" in accepts:
        kwargs["callback_on_step_end"] = step_progress
    with loaded.lock:
        kwargs["generator"] = torch.Generator(device=loaded.device).manual_seed(seed)
        try:
            output = loaded.pipeline(**kwargs)
        except BackendError:
            raise
        except Exception as exc:
            if exc is step_progress.error:
                raise
            raise _generation_error(exc) from exc
    flagged = getattr(output, "nsfw_content_detected", None)
    if flagged and any(flagged):
        logger.info("the pipeline's safety checker withheld an image")
        raise InputRejected("The model's safety filter withheld this image; try another prompt.")
    image = output.images[0]
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image, dtype=np.float32)
    if not np.isfinite(array).all():
        # Typically float16 overflowing in the VAE (SDXL's VAE does); bfloat16 or float32 avoids it.
        logger.error(
            "the pipeline returned NaN/inf pixels (dtype %s); try dtype bfloat16 or float32", loaded.dtype
        )
        raise BackendError("The model produced a broken image (numeric overflow).")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]  # greyscale
    elif array.ndim == 3:
        array = array[:, :, :3]  # RGB; an alpha channel, if any, is dropped
    pixels = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(pixels)


def _generation_error(exc: Exception) -> BackendError:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        logger.error("the diffusers pipeline ran out of GPU memory", exc_info=exc)
        return BackendError("The model ran out of GPU memory.")
    logger.error("the diffusers pipeline failed", exc_info=exc)
    return BackendError(f"Image generation failed ({type(exc).__name__}).")


def image_encode(image: Any, output_format: str) -> bytes:
    """A PIL image as the bytes of a PNG, WebP or JPEG file."""
    out = io.BytesIO()
    if output_format == "png":
        image.save(out, format="PNG")
    elif output_format == "webp":
        image.save(out, format="WEBP", quality=WEBP_QUALITY)
    else:
        image.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
