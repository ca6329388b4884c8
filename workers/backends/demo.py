"""Demo backend for the embedded default: canned, prompt-aware text streamed word by word.

It exists so a newcomer sees the whole battle → vote → leaderboard loop with no model server and no
GPU. The UI labels battles with demo models as such. Each persona writes in its own style so votes
on the demo board are not pure noise; none of them ever names a model or an organisation.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from .base import BackendConfigError, BackendError, GenerationRequest, TextBackend

PERSONAS = ("concise", "thorough", "listy", "poetic", "socratic")

_STOP = {
    "the",
    "a",
    "an",
    "and",
    "or",
    "of",
    "to",
    "in",
    "is",
    "are",
    "what",
    "how",
    "why",
    "me",
    "you",
    "i",
    "for",
    "on",
    "with",
    "about",
    "can",
    "do",
    "does",
    "please",
    "write",
    "tell",
    "explain",
    "my",
    "it",
}


def _topic(prompt: str) -> str:
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", prompt) if w.lower() not in _STOP]
    return " ".join(words[:4]) or "your question"


def _compose(persona: str, prompt: str, rng: random.Random) -> str:
    topic = _topic(prompt)
    if persona == "concise":
        return f"In short: {topic} comes down to one idea. Start simple, check the result, then refine."
    if persona == "thorough":
        parts = [
            f"## Overview\n\nLet us look at {topic} carefully.",
            f"First, the context matters: {topic} depends on what you want to achieve.",
            "Second, consider the trade-offs: speed against accuracy, effort against benefit.",
            f"Finally, a practical step: try a small experiment with {topic} and measure what changes.",
        ]
        return "\n\n".join(parts)
    if persona == "listy":
        items = [
            "define the goal",
            f"gather facts about {topic}",
            "compare the options",
            "pick one and test it",
            "write down what you learned",
        ]
        rng.shuffle(items)
        return f"Here is a plan for **{topic}**:\n\n" + "\n".join(f"- {item}" for item in items)
    if persona == "poetic":
        return (
            f"Of {topic} the morning sings,\nof patient hands and simple things;\n"
            "ask once, ask twice, the answer grows,\nas every careful reader knows."
        )
    return (
        f"What do you already know about {topic}? Which part puzzles you most? "
        "If you had to explain it to a friend, where would you begin?"
    )


class DemoBackend(TextBackend):
    kind: ClassVar[str] = "demo"
    demo: ClassVar[bool] = True
    config_fields: ClassVar[frozenset[str]] = frozenset(
        {"persona", "delay", "first_token_delay", "fail_rate"}
    )

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().validate_config(config)
        persona = cleaned.get("persona", "concise")
        if persona not in PERSONAS:
            raise BackendConfigError(f"persona must be one of {list(PERSONAS)}, got {persona!r}")
        for name in ("delay", "first_token_delay", "fail_rate"):
            value = cleaned.get(name, 0)
            if not isinstance(value, int | float) or value < 0:
                raise BackendConfigError(f"{name} must be a non-negative number, got {value!r}")
        if cleaned.get("fail_rate", 0) > 1:
            raise BackendConfigError("fail_rate must be between 0 and 1")
        return cleaned

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        from django.conf import settings  # the demo delay is a site setting; other backends need no Django

        prompt = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
        seed = int.from_bytes(
            hashlib.sha256(f"{self.config}{prompt}{len(request.messages)}".encode()).digest()[:8]
        )
        rng = random.Random(seed)
        if rng.random() < float(self.config.get("fail_rate", 0)):
            raise BackendError("The demo model failed on purpose (fail_rate is set).")
        text = _compose(self.config.get("persona", "concise"), prompt, rng)
        delay = float(self.config.get("delay", settings.ARENA_DEMO_DELAY))
        time.sleep(float(self.config.get("first_token_delay", 0)))
        pieces = re.findall(r"\S+\s*|\s+", text)[: request.params.max_new_tokens]
        for piece in pieces:
            yield piece
            time.sleep(delay * rng.uniform(0.5, 1.5))
        self.usage.prompt_tokens = sum(len(m["content"].split()) for m in request.messages)
        self.usage.output_tokens = len(pieces)
