"""A local causal language model served with Hugging Face transformers, streamed token by token.

This module stays free of torch: the web process imports it to validate configs (the admin), and only a worker
that loads or runs a model imports the torch side, `transformers_runtime`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .base import BackendConfigError, GenerationRequest, TextBackend, Usage

if TYPE_CHECKING:
    from .transformers_runtime import LoadedModel

DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DTYPE_NAMES = ("float32", "float16", "bfloat16")
CONFIG_FIELDS = frozenset({"model_path", "device", "dtype", "trust_remote_code"})


class TransformersBackend(TextBackend):
    """Config: `model_path` (local directory, required), `device` ("auto" | "cpu" | "cuda" | "cuda:N"),
    `dtype` ("auto" | "float32" | "float16" | "bfloat16"), plus the generation parameters.
    `trust_remote_code` is always refused: a checkpoint must not run its own Python in a worker."""

    kind = "transformers"
    config_fields = CONFIG_FIELDS

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().validate_config(config)
        model_path = cleaned.get("model_path")
        if not isinstance(model_path, str) or not model_path.strip():
            raise BackendConfigError("model_path is required: the local directory holding the checkpoint")
        device = cleaned.setdefault("device", "auto")
        if not isinstance(device, str) or not DEVICE_RE.match(device):
            raise BackendConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        dtype = cleaned.setdefault("dtype", "auto")
        if dtype != "auto" and (not isinstance(dtype, str) or dtype not in DTYPE_NAMES):
            raise BackendConfigError(f"dtype must be 'auto' or one of {list(DTYPE_NAMES)}, got {dtype!r}")
        if cleaned.get("trust_remote_code", False) is not False:
            raise BackendConfigError(
                "trust_remote_code must be false: checkpoints may not run their own code"
            )
        return cleaned

    def load(self) -> LoadedModel:
        """The loaded model for this config, from the process cache. A worker may call it at start to warm
        up, so the first battle does not pay for the load."""
        return _runtime().model_get(self.config)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        self.usage = Usage()
        yield from _runtime().answer_stream(self.load(), request, self.usage)


def _runtime() -> ModuleType:
    # Imported on first use, so processes that only validate configs never load torch.
    return import_module(f"{__package__}.transformers_runtime")
