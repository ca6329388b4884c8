"""Battle categories for per-category leaderboards, decided from the user's prompts alone."""

from __future__ import annotations

import re
from collections.abc import Sequence

CATEGORIES = {
    "coding": "Coding",
    "long_query": "Long query",
    "multi_turn": "Multi-turn",
    "non_english": "Non-English",
}

_CODE = re.compile(
    r"```|\b(def|class|function|return|import|SELECT|const|var|public static|#include)\b|[{};]\s*$"
    r"|\b(python|javascript|typescript|rust|golang|java|c\+\+|sql|regex|bash|compile|debug|stack ?trace)\b",
    re.IGNORECASE | re.MULTILINE,
)
LONG_QUERY_CHARS = 500


def battle_categories(prompts: Sequence[str]) -> list[str]:
    text = "\n".join(prompts)
    found = []
    if _CODE.search(text):
        found.append("coding")
    if len(text) >= LONG_QUERY_CHARS:
        found.append("long_query")
    if len(prompts) > 1:
        found.append("multi_turn")
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.7:
        found.append("non_english")
    return found
