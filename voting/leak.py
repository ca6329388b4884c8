"""Identity-leak check: an answer that names a model or its maker voids the vote's effect on ratings.

Outputs are checked, not the user's prompt (Chatbot Arena also scans prompts, so merely asking
about a company voids a vote). Names are compared with separators folded, so "Llama-3 8B",
"llama 3 8b" and "llama_3_8b" all match the slug "llama-3-8b".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[\s_\-]+")
_MIN_TERM_LENGTH = 3


def _fold(text: str) -> str:
    return _SEPARATORS.sub(" ", text.lower())


@dataclass(frozen=True)
class Leak:
    side: str
    term: str

    @property
    def reason(self) -> str:
        return f"identity leak: answer {self.side.upper()} names {self.term!r}"


def leak_terms(names: Iterable[str]) -> list[str]:
    """Folded, de-duplicated terms, longest first so the reason names the most specific match."""
    terms = {_fold(n).strip() for n in names if n}
    return sorted((t for t in terms if len(t) >= _MIN_TERM_LENGTH), key=len, reverse=True)


def leak_find(outputs: Iterable[tuple[str, str]], terms: list[str]) -> Leak | None:
    """First (side, term) where an output names a term as a whole word; None when clean."""
    if not terms:
        return None
    pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(t) for t in terms) + r")(?![a-z0-9])")
    for side, text in outputs:
        match = pattern.search(_fold(text))
        if match:
            return Leak(side, match.group(1))
    return None
