"""What the local backends (transformers, diffusers, Shap-E) share: where a model runs, and a per-process
cache of loaded models. Importing this module does not import torch; its functions do, when called."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .base import BackendError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def model_dir(config: Mapping[str, Any]) -> Path:
    """A validated config's `model_path` as a directory that exists on this worker."""
    path = Path(config["model_path"]).expanduser()
    if not path.is_dir():
        # The path is not in the voter's message: it is internal and often names the model.
        logger.error("model directory not found on this worker: %s", path)
        raise BackendError("The model files were not found on this worker.")
    return path


def device_resolve(device: str) -> torch.device:
    """A config device ("auto", "cpu", "cuda", "cuda:N") as a torch device that exists on this machine."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError("this worker has no CUDA device")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise BackendError(f"this worker has no CUDA device {resolved.index}")
    return resolved


def half_on_gpu(dtype: str, device: torch.device) -> torch.dtype:
    """A config dtype; "auto" is float16 on a GPU (what diffusion checkpoints are published in) and float32 on
    a CPU, where half precision is slow or unsupported."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    return torch.float16 if device.type == "cuda" else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class LoadCache(Generic[K, V]):
    """Loaded models of one process, by key. Each key loads once; concurrent callers for it wait for that
    load. Locks are per key (never one global lock held while loading), so loading a big model does not stall
    battles on loaded ones. Failures are not cached: the next battle tries again (the files may have
    appeared, the GPU been freed)."""

    def __init__(self) -> None:
        self._loaded: dict[K, V] = {}
        self._lock = threading.Lock()  # guards the two dicts, never held while loading
        self._key_locks: dict[K, threading.Lock] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._loaded:  # loaded by the thread we waited for
                    return self._loaded[key]
            loaded = load()
            with self._lock:
                self._loaded[key] = loaded
            return loaded

    def clear(self) -> None:
        """Forget every loaded model (tests; a worker freeing memory). Work in flight keeps its reference."""
        import torch

        with self._lock:
            self._loaded.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __len__(self) -> int:
        return len(self._loaded)

    def __contains__(self, key: object) -> bool:
        return key in self._loaded
