"""Text-to-3D and image-to-3D with OpenAI's Shap-E through diffusers, exported as GLB meshes.

The model is a directory written by `save_pretrained`: openai/shap-e (ShapEPipeline, mode "text") or
openai/shap-e-img2img (ShapEImg2ImgPipeline, mode "image"). It is loaded from local files only, once per
process and (path, mode, device, dtype); torch and diffusers are imported on first use, so the web process
validates these configs (the admin) without them.

A generation runs the pipeline's diffusion to a latent (`output_type="latent"`), then decodes the latent with
the pipeline's own renderer, `shap_e_renderer.decode_to_mesh`, which is what `output_type="mesh"` does, but
with a grid size of our choosing: the pipeline fixes it at 128, and the marching-cubes grid is what bounds the
mesh's detail, its decode time and its memory. The mesh (Z-up, linear vertex colours) becomes a GLB with
`workers.mesh_export`.

Progress: diffusers 0.42's Shap-E pipelines take no step callback, so a forward hook on the prior counts the
denoising model's calls against the scheduler's timesteps (Heun runs about two per step), and a hook on the
renderer's MLP counts the field queries of the mesh decode.

Messages of BackendError are kept for staff (voters see a neutral text by kind): they never hold the model's
path; the details go to the worker's log and the chained exception. An input image that cannot be read is the
input's fault (InputRejected) and does not count against the model's health.
"""

from __future__ import annotations

import io
import json
import logging
import math
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
from .transformers_local import DEVICE_RE, DTYPE_NAMES

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CONFIG_FIELDS = frozenset({"model_path", "mode", "steps", "guidance", "grid_size", "dtype", "device"})
# mode -> the diffusers pipeline class its directory must hold
PIPELINE_CLASSES = {"text": "ShapEPipeline", "image": "ShapEImg2ImgPipeline"}
DEFAULT_STEPS = 64  # what OpenAI's Shap-E examples use
MAX_STEPS = 1000
DEFAULT_GUIDANCE = {"text": 15.0, "image": 3.0}
DEFAULT_GRID_SIZE = 128  # decode_to_mesh's own default, the detail `output_type="mesh"` gives
MIN_GRID_SIZE = 8
MAX_GRID_SIZE = 256  # marching cubes holds ~15 int64 per cube: 256^3 cubes is already several GiB
QUERY_BATCH = 4096  # decode_to_mesh's default field-query batch
# The progress bar: denoising up to DIFFUSION_SHARE, decoding the mesh up to DECODE_SHARE, writing the GLB.
DIFFUSION_SHARE = 0.8
DECODE_SHARE = 0.95


class ShapEBackend(MediaBackend):
    """Config: `model_path` (local directory saved with save_pretrained, required), `mode` ("text" for
    openai/shap-e, "image" for openai/shap-e-img2img; default "text"), `steps` (denoising steps, default 64),
    `guidance` (classifier-free guidance scale; default 15 for text, 3 for image), `grid_size` (marching-cubes
    resolution of the mesh, 8 to 256, default 128), `dtype` ("auto" | "float16" | "bfloat16" | "float32"; auto
    is float16 on CUDA, float32 on CPU), `device` ("auto" | "cpu" | "cuda" | "cuda:N"; auto is CUDA when
    present), `seed`."""

    kind = "shap_e"
    modalities: ClassVar[frozenset[str]] = frozenset({"3d"})
    # Either, by mode: accepted_inputs says which one a given model takes.
    inputs: ClassVar[frozenset[str]] = frozenset({"text", "image"})
    config_fields: ClassVar[frozenset[str]] = CONFIG_FIELDS

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().validate_config(config)
        model_path = cleaned.get("model_path")
        if not isinstance(model_path, str) or not model_path.strip():
            raise BackendConfigError(
                "model_path is required: the local directory holding the Shap-E pipeline saved with "
                "save_pretrained"
            )
        mode = cleaned["mode"] = _mode(cleaned)
        steps = cleaned.setdefault("steps", DEFAULT_STEPS)
        if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
            raise BackendConfigError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
        guidance = cleaned.setdefault("guidance", DEFAULT_GUIDANCE[mode])
        if (
            isinstance(guidance, bool)
            or not isinstance(guidance, int | float)
            or not math.isfinite(guidance)
            or guidance < 0
        ):
            raise BackendConfigError(f"guidance must be a number of at least 0, got {guidance!r}")
        cleaned["guidance"] = float(guidance)
        grid_size = cleaned.setdefault("grid_size", DEFAULT_GRID_SIZE)
        if not _is_int(grid_size) or not MIN_GRID_SIZE <= grid_size <= MAX_GRID_SIZE:
            raise BackendConfigError(
                f"grid_size must be an integer from {MIN_GRID_SIZE} to {MAX_GRID_SIZE}, got {grid_size!r}"
            )
        device = cleaned.setdefault("device", "auto")
        if not isinstance(device, str) or not DEVICE_RE.match(device):
            raise BackendConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        dtype = cleaned.setdefault("dtype", "auto")
        if dtype != "auto" and (not isinstance(dtype, str) or dtype not in DTYPE_NAMES):
            raise BackendConfigError(f"dtype must be 'auto' or one of {list(DTYPE_NAMES)}, got {dtype!r}")
        return cleaned

    @classmethod
    def accepted_inputs(cls, config: Mapping[str, Any]) -> frozenset[str]:
        if not isinstance(config, Mapping):
            raise BackendConfigError("backend config must be a JSON object")
        return frozenset({_mode(config)})

    def load(self) -> LoadedPipeline:
        """The loaded pipeline for this config, from the process cache. A worker may call it at start to warm
        up, so the first battle does not pay for the load."""
        return pipeline_get(self.config)

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        from workers.mesh_export import MeshExportError, glb_export, mesh_from_shap_e

        condition = self._condition(request)
        progress(0.0)
        loaded = self.load()
        seed = request.seed if request.seed is not None else self.config.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**63)
        mesh = mesh_make(loaded, self.config, condition, seed, progress)
        try:
            data = glb_export(mesh_from_shap_e(mesh))
        except MeshExportError as exc:
            logger.warning("Shap-E mesh not exportable: %s", exc)
            raise BackendError(str(exc)) from exc
        progress(1.0)
        return MediaResult(data=data, format="glb")

    def _condition(self, request: MediaRequest) -> Any:
        """The prompt (text mode) or the input image as an RGB PIL image (image mode)."""
        if self.config["mode"] == "text":
            prompt = request.prompt.strip()
            if not prompt:
                raise BackendError("This model makes 3D objects from a text prompt; the prompt is empty.")
            return prompt
        if not request.image:
            raise BackendError("This model makes 3D objects from an image; no image was given.")
        return image_open(request.image)


def _mode(config: Mapping[str, Any]) -> str:
    mode = config.get("mode", "text")
    if not isinstance(mode, str) or mode not in PIPELINE_CLASSES:
        raise BackendConfigError(f"mode must be one of {sorted(PIPELINE_CLASSES)}, got {mode!r}")
    return mode


def _is_int(value: Any) -> bool:
    # bool is an int in Python; `steps: true` is a mistake, not one step.
    return isinstance(value, int) and not isinstance(value, bool)


def image_open(data: bytes) -> Any:
    """The input image as RGB; transparency is laid on white, the background of Shap-E's training renders."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(canvas, rgba).convert("RGB")
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputRejected("The input image could not be read.") from exc


# --- the torch side: loading and running pipelines ----------------------------------------------------------


@dataclass(frozen=True)
class LoadedPipeline:
    pipeline: Any  # diffusers ShapEPipeline or ShapEImg2ImgPipeline
    mode: str
    device: torch.device
    dtype: torch.dtype
    # A call resets the scheduler's timesteps and decode_to_mesh writes the latent's weights into the
    # renderer's MLP in place, so two battle sides on threads of one worker must not share a pipeline at
    # once: calls on one pipeline hold this lock; different pipelines still run in parallel.
    lock: threading.Lock


PipelineKey = tuple[str, str, str, str]  # (resolved path, mode, device, dtype name)

_pipelines: LoadCache[PipelineKey, LoadedPipeline] = LoadCache()


def pipeline_get(config: Mapping[str, Any]) -> LoadedPipeline:
    """The loaded pipeline for a validated ShapEBackend config, from the process cache."""
    path = loading.model_dir(config)
    device = device_resolve(config["device"])
    return pipeline_load(path, config["mode"], device, dtype_resolve(config["dtype"], device))


def device_resolve(device: str) -> torch.device:
    return loading.device_resolve(device)


def dtype_resolve(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is float16 on a GPU (Shap-E runs well in half precision there), float32 on a CPU."""
    return loading.half_on_gpu(dtype, device)


def pipeline_load(path: Path, mode: str, device: torch.device, dtype: torch.dtype) -> LoadedPipeline:
    """Load once per process and key (see loading.LoadCache)."""
    key: PipelineKey = (str(path.resolve()), mode, str(device), loading.dtype_name(dtype))
    return _pipelines.get(key, lambda: _pipeline_read(path, mode, device, dtype))


def pipeline_cache_clear() -> None:
    """Forget every loaded pipeline (tests; a worker freeing memory). Generations in flight keep theirs."""
    _pipelines.clear()


def _pipeline_read(path: Path, mode: str, device: torch.device, dtype: torch.dtype) -> LoadedPipeline:
    import diffusers
    import torch

    expected = PIPELINE_CLASSES[mode]
    try:
        found = json.loads((path / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as exc:
        logger.error("no readable model_index.json in %s: not a pipeline saved with save_pretrained", path)
        raise BackendError("The model files on this worker are incomplete.") from exc
    if found != expected:
        other = {name: m for m, name in PIPELINE_CLASSES.items()}.get(found)
        hint = f"; set mode to {other!r}" if other else ""
        logger.error("%s holds a %s, but mode %r needs a %s%s", path, found, mode, expected, hint)
        raise BackendError("The model files on this worker do not match its configuration.")
    try:
        pipeline = getattr(diffusers, expected).from_pretrained(
            path, dtype=dtype, local_files_only=True, trust_remote_code=False
        )
        pipeline = pipeline.to(device)
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        logger.error("not enough GPU memory to load the Shap-E pipeline at %s", path, exc_info=True)
        raise BackendError("Not enough GPU memory to load the model.") from exc
    except Exception as exc:
        # The exception text names files and the model: it goes to the log and the chain.
        logger.error("could not load the Shap-E pipeline at %s", path, exc_info=True)
        raise BackendError(f"The model could not be loaded ({type(exc).__name__}).") from exc
    pipeline.set_progress_bar_config(disable=True)
    return LoadedPipeline(pipeline, mode, device, dtype, threading.Lock())


class _Progress:
    """Turns model calls into progress: the prior's calls against the scheduler's timesteps, then the
    renderer's field queries against the grid. An exception the caller's callback raises (a cancelled or
    overdue battle) is remembered, so it surfaces unchanged rather than as a failure of the model."""

    def __init__(self, pipeline: Any, progress: ProgressCallback, grid_size: int) -> None:
        self.pipeline = pipeline
        self.progress = progress
        self.prior_calls = 0
        self.field_calls = 0
        self.field_batches = math.ceil(grid_size**3 / QUERY_BATCH)
        self.mesh_vertices: int | None = None
        self.error: BaseException | None = None

    def report(self, fraction: float) -> None:
        try:
            self.progress(fraction)
        except BaseException as exc:
            self.error = exc
            raise

    def prior_called(self, module: Any, args: Any, output: Any) -> None:
        self.prior_calls += 1
        total = max(len(self.pipeline.scheduler.timesteps), 1)
        self.report(DIFFUSION_SHARE * min(self.prior_calls, total) / total)

    def field_called(self, module: Any, args: Any, output: Any) -> None:
        self.field_calls += 1
        done = min(self.field_calls / self.field_batches, 1.0)
        self.report(DIFFUSION_SHARE + (DECODE_SHARE - DIFFUSION_SHARE) * done)

    def mesh_decoded(self, module: Any, args: Any, output: Any) -> None:
        self.mesh_vertices = len(output.verts)


def mesh_make(
    loaded: LoadedPipeline, config: Mapping[str, Any], condition: Any, seed: int, progress: ProgressCallback
) -> Any:
    """Diffuse a latent for the prompt or image and decode it to a mesh (diffusers' MeshDecoderOutput).
    Deterministic for a seed on a given device and dtype: the noise comes from a private torch.Generator,
    never the global RNG other threads draw from."""
    import torch

    pipeline = loaded.pipeline
    renderer = pipeline.shap_e_renderer
    tracker = _Progress(pipeline, progress, config["grid_size"])
    condition_name = "prompt" if loaded.mode == "text" else "image"
    with loaded.lock:
        hooks = [
            pipeline.prior.register_forward_hook(tracker.prior_called),
            renderer.mlp.register_forward_hook(tracker.field_called),
            renderer.mesh_decoder.register_forward_hook(tracker.mesh_decoded),
        ]
        try:
            generator = torch.Generator(device=loaded.device).manual_seed(seed)
            latents = pipeline(
                **{condition_name: condition},
                num_inference_steps=config["steps"],
                guidance_scale=config["guidance"],
                generator=generator,
                output_type="latent",
            ).images
            return renderer.decode_to_mesh(latents[0][None, :], loaded.device, grid_size=config["grid_size"])
        except Exception as exc:
            if exc is tracker.error or _is_time_limit(exc):
                raise
            if tracker.mesh_vertices == 0:
                # decode_to_mesh cannot colour a mesh without vertices and fails on it (torch.cat of nothing).
                logger.info("Shap-E's signed-distance field has no surface in the grid")
                raise BackendError("The model produced an empty mesh.") from exc
            raise _generation_error(exc) from exc
        finally:
            for hook in hooks:
                hook.remove()


def _is_time_limit(exc: BaseException) -> bool:
    """Celery's soft time limit, raised inside whatever code runs when it strikes: the worker reports it."""
    from celery.exceptions import SoftTimeLimitExceeded

    return isinstance(exc, SoftTimeLimitExceeded)


def _generation_error(exc: Exception) -> BackendError:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()
        logger.error("the Shap-E pipeline ran out of GPU memory", exc_info=exc)
        return BackendError("The model ran out of GPU memory.")
    logger.error("the Shap-E pipeline failed", exc_info=exc)
    return BackendError(f"3D generation failed ({type(exc).__name__}).")
