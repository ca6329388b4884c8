"""Backend registry. Modules are imported lazily so the web process never imports torch."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from .base import BackendConfigError, BackendError, GenerationParams, GenerationRequest, TextBackend, Usage

__all__ = [
    "BACKEND_KINDS",
    "BackendConfigError",
    "BackendError",
    "GenerationParams",
    "GenerationRequest",
    "TextBackend",
    "Usage",
    "backend_class",
    "backend_create",
]

# kind -> "module:Class" under workers.backends
BACKEND_KINDS: dict[str, str] = {
    "demo": "demo:DemoBackend",
    "openai": "openai_compat:OpenAICompatBackend",
    "transformers": "transformers_local:TransformersBackend",
}


def backend_class(kind: str) -> type[TextBackend]:
    try:
        target = BACKEND_KINDS[kind]
    except KeyError:
        raise BackendConfigError(
            f"unknown backend kind {kind!r}; expected one of {sorted(BACKEND_KINDS)}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(import_module(f"{__name__}.{module_name}"), class_name)


def backend_create(kind: str, config: Mapping[str, Any]) -> TextBackend:
    return backend_class(kind)(config)
