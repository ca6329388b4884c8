"""Pre-generated galleries (3D Arena's layout): the outputs already exist, imported by `import_gallery`.

A gallery model never runs at battle time: `workers.services.generation_run` takes the stored output of the
battle's gallery prompt for this model (arena.models.GalleryOutput). This class only declares the kind so a
gallery model's config is validated like any other.
"""

from __future__ import annotations

from typing import ClassVar

from .base import BackendError, MediaBackend, MediaRequest, MediaResult, ProgressCallback


class GalleryBackend(MediaBackend):
    kind = "gallery"
    modalities: ClassVar[frozenset[str]] = frozenset({"image", "3d"})
    inputs: ClassVar[frozenset[str]] = frozenset()  # never paired on a voter's own prompt
    # "demo": true marks the generated demo galleries of the embedded default (shown as demo in the UI).
    config_fields: ClassVar[frozenset[str]] = frozenset({"gallery", "demo"})

    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        raise BackendError("This model only answers the prompts of its pre-generated gallery.")
