"""Backend registry. Modules are imported lazily so the web process never imports torch."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from .base import (
    BackendConfigError,
    BackendError,
    GenerationParams,
    GenerationRequest,
    InputRejected,
    MediaBackend,
    MediaRequest,
    MediaResult,
    TextBackend,
    Usage,
)

__all__ = [
    "BACKEND_KINDS",
    "BackendConfigError",
    "BackendError",
    "GenerationParams",
    "GenerationRequest",
    "InputRejected",
    "MediaBackend",
    "MediaRequest",
    "MediaResult",
    "TextBackend",
    "Usage",
    "backend_class",
    "backend_create",
    "backend_validate",
]

# kind -> "module:Class" under workers.backends
BACKEND_KINDS: dict[str, str] = {
    "demo": "demo:DemoBackend",
    "openai": "openai_compat:OpenAICompatBackend",
    "transformers": "transformers_local:TransformersBackend",
    # Image and 3D (MediaBackend)
    "demo_image": "demo_media:DemoImageBackend",
    "demo_3d": "demo_media:Demo3DBackend",
    "diffusers_image": "diffusers_image:DiffusersImageBackend",
    "openai_images": "openai_images:OpenAIImagesBackend",
    "shap_e": "shap_e:ShapEBackend",
    "remote_3d": "remote_3d:Remote3DBackend",
    "gallery": "gallery:GalleryBackend",
}


def backend_class(kind: str) -> type[TextBackend] | type[MediaBackend]:
    try:
        target = BACKEND_KINDS[kind]
    except KeyError:
        raise BackendConfigError(
            f"unknown backend kind {kind!r}; expected one of {sorted(BACKEND_KINDS)}"
        ) from None
    module_name, class_name = target.split(":")
    return getattr(import_module(f"{__name__}.{module_name}"), class_name)


def backend_validate(kind: str, config: Mapping[str, Any], modality: str) -> dict[str, Any]:
    """A model's backend must serve its modality and its config must be usable; returns the cleaned config."""
    cls = backend_class(kind)
    if modality not in cls.modalities:
        raise BackendConfigError(
            f"backend {kind!r} makes {'/'.join(sorted(cls.modalities))} outputs, not {modality}; "
            f"pick a backend for {modality} models"
        )
    return cls.validate_config(config)


def backend_create(kind: str, config: Mapping[str, Any]) -> TextBackend | MediaBackend:
    return backend_class(kind)(config)
