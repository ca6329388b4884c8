"""The contract every generation backend keeps.

A backend turns a conversation into a stream of text deltas. It never touches the database or the
channel layer: `workers.services.generation_run` owns the row, the timings and the fan-out, so a
backend stays testable on its own and the same code serves every worker kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class BackendError(Exception):
    """A generation failed. The message is kept for staff and the log (Generation.error_detail); voters see a
    neutral text by kind. It must still never hold secrets (API keys, internal hostnames)."""


class InputRejected(BackendError):
    """The model (or its server) refused *this input*: too long for its context window, refused by its content
    filter, a request the server answers 400/413/422. The battle fails with a "try another prompt" text and
    the model's health is not charged: a visitor's prompt must not be able to put a model into outage. (A
    model that rejects every input, e.g. a misconfigured one, is caught by the probe that a streak of
    rejections asks for: the probe's own prompt is rejected too.) Not for 401/403/404/429: those are the
    operator's problem."""


# HTTP statuses by which a model server says "this request", not "this server", is at fault.
INPUT_REJECTED_STATUSES = frozenset({400, 413, 422})


def http_failure(status: int, message: str) -> BackendError:
    """The error for a model server's HTTP error status: InputRejected for the input-caused ones."""
    return InputRejected(message) if status in INPUT_REJECTED_STATUSES else BackendError(message)


class BackendConfigError(ValueError):
    """A model's backend configuration is unusable; raised when a ModelEntry is saved or loaded."""


# Fields every model config may carry, whatever its backend: sampling parameters, a system prompt,
# and extra names that reveal the model (for the identity-leak check on answers).
PARAM_FIELDS = frozenset({"temperature", "top_p", "max_new_tokens", "seed"})
COMMON_FIELDS = PARAM_FIELDS | {"system_prompt", "aliases"}


@dataclass(frozen=True)
class GenerationParams:
    # Chatbot Arena's defaults (shared/REFERENCE.md).
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 2000
    seed: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GenerationParams:
        """Per-model overrides from a ModelEntry's JSON config, type-checked."""
        known = {"temperature": float, "top_p": float, "max_new_tokens": int, "seed": int}
        values: dict[str, Any] = {}
        for name, kind in known.items():
            if name in config and config[name] is not None:
                try:
                    values[name] = kind(config[name])
                except (TypeError, ValueError) as exc:
                    raise BackendConfigError(
                        f"{name} must be a {kind.__name__}, got {config[name]!r}"
                    ) from exc
        return cls(**values)


@dataclass
class GenerationRequest:
    """One side of one turn: the whole conversation so far, this side's own answers included."""

    messages: list[
        dict[str, str]
    ]  # OpenAI style: [{"role": "user" | "assistant" | "system", "content": ...}]
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass
class Usage:
    prompt_tokens: int | None = None
    output_tokens: int | None = None


class TextBackend(ABC):
    """Streams a chat answer. Subclasses set `kind` and implement `stream`.

    `stream` yields text deltas as they are produced and fills `self.usage` before it returns.
    It raises BackendError for anything the voter should see as a failed generation.
    """

    kind: ClassVar[str]
    modalities: ClassVar[frozenset[str]] = frozenset({"text"})
    demo: ClassVar[bool] = False  # shown as "demo" in the UI so nobody mistakes it for a real model
    # The backend's own config fields; with COMMON_FIELDS they are all a config may hold. A misspelt
    # key ("max_tokens", "dtpye") is refused rather than silently ignored.
    config_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = self.validate_config(config)
        self.usage = Usage()

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return a cleaned copy of `config` or raise BackendConfigError naming the bad field."""
        if not isinstance(config, Mapping):
            raise BackendConfigError("backend config must be a JSON object")
        allowed = cls.config_fields | COMMON_FIELDS
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise BackendConfigError(f"unknown field {unknown[0]!r}; allowed: {sorted(allowed)}")
        GenerationParams.from_config(config)
        return dict(config)

    @abstractmethod
    def stream(self, request: GenerationRequest) -> Iterator[str]:
        raise NotImplementedError


# --- Image and 3D ------------------------------------------------------------------------------------------

# Fields every image / 3D model config may carry besides its backend's own.
MEDIA_COMMON_FIELDS = frozenset({"seed", "aliases"})


@dataclass(frozen=True)
class MediaRequest:
    """One side of an image or 3D battle: a text prompt, an input image (image-to-3D), or both.

    `image` holds the bytes of an image the voter uploaded or the gallery prompt's input image, already
    checked by `arena.media` (PNG, JPEG or WebP). `prompt_key` names a gallery prompt; only the gallery
    backend reads it.
    """

    prompt: str = ""
    image: bytes | None = None
    seed: int | None = None
    prompt_key: str = ""


@dataclass(frozen=True)
class MediaResult:
    """What a media backend made: the file's bytes and its format as a lowercase extension
    (png, jpg, webp, glb, gltf, obj, ply, splat, spz). The caller checks the content against the format
    with `arena.media.media_inspect`, so a backend that lies about it fails cleanly."""

    data: bytes
    format: str


ProgressCallback = Callable[[float], None]


class MediaBackend(ABC):
    """Makes one image or 3D asset. Subclasses set `kind`, `output_kind` and implement `generate`.

    `generate` calls `progress(fraction)` (0..1) as work advances (diffusion steps, bytes received) so the
    page can show it, and raises BackendError for anything the voter should see as a failed generation.
    """

    kind: ClassVar[str]
    modalities: ClassVar[frozenset[str]]  # {"image"}, {"3d"} or both (the gallery)
    demo: ClassVar[bool] = False
    # What the backend accepts: "text", "image" or both; a battle pairs only models accepting its input.
    inputs: ClassVar[frozenset[str]] = frozenset({"text"})
    config_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = self.validate_config(config)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(config, Mapping):
            raise BackendConfigError("backend config must be a JSON object")
        allowed = cls.config_fields | MEDIA_COMMON_FIELDS
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise BackendConfigError(f"unknown field {unknown[0]!r}; allowed: {sorted(allowed)}")
        seed = config.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise BackendConfigError(f"seed must be an integer, got {seed!r}")
        return dict(config)

    @classmethod
    def accepted_inputs(cls, config: Mapping[str, Any]) -> frozenset[str]:
        """The inputs this model takes; a backend whose config narrows them (e.g. text-or-image) overrides."""
        return cls.inputs

    @abstractmethod
    def generate(self, request: MediaRequest, progress: ProgressCallback) -> MediaResult:
        raise NotImplementedError
