"""The contract every generation backend keeps.

A backend turns a conversation into a stream of text deltas. It never touches the database or the
channel layer: `workers.services.generation_run` owns the row, the timings and the fan-out, so a
backend stays testable on its own and the same code serves every worker kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class BackendError(Exception):
    """A generation failed. The message is shown to the voter, so it must never hold secrets
    (API keys, internal hostnames) or the model's identity."""


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
