"""Per-battle conversation metadata in the public dump's `conv_metadata` shape.

Style control needs, per battle, the answer lengths and markdown counts of both sides; they are
computed once at vote time and stored on the vote, so the leaderboard and the exports read them
without re-parsing outputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_HEADER = re.compile(r"^(#{1,6})\s+\S", re.MULTILINE)
_ORDERED = re.compile(r"^\s*\d+[.)]\s+\S", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s+\S", re.MULTILINE)
_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)


def token_estimate(text: str) -> int:
    """Whitespace tokens: used when a backend reports no token count."""
    return len(text.split())


def markdown_counts(text: str) -> dict[str, dict[str, int]]:
    prose = _CODE_BLOCK.sub("", text)  # a '#' comment inside code is not a header
    headers = {f"h{i}": 0 for i in range(1, 7)}
    for match in _HEADER.finditer(prose):
        headers[f"h{len(match.group(1))}"] += 1
    return {
        "header_count": headers,
        "list_count": {"ordered": len(_ORDERED.findall(prose)), "unordered": len(_UNORDERED.findall(prose))},
        "bold_count": {"**": prose.count("**") // 2, "__": prose.count("__") // 2},
    }


def conv_metadata(
    prompts: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    tokens_a: int | None = None,
    tokens_b: int | None = None,
) -> dict[str, Any]:
    text_a, text_b = "\n".join(answers_a), "\n".join(answers_b)
    meta: dict[str, Any] = {
        "sum_user_tokens": sum(token_estimate(p) for p in prompts),
        "sum_assistant_a_tokens": tokens_a if tokens_a is not None else token_estimate(text_a),
        "sum_assistant_b_tokens": tokens_b if tokens_b is not None else token_estimate(text_b),
        "turns": len(prompts),
    }
    for side, text in (("a", text_a), ("b", text_b)):
        for name, counts in markdown_counts(text).items():
            meta[f"{name}_{side}"] = counts
    return meta
