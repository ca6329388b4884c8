"""Identity-leak check: an answer that names a model or its maker voids the vote's effect on ratings.

Outputs are checked, not the user's prompt (Chatbot Arena also scans prompts, so merely asking
about a company voids a vote). Names are compared with separators folded, so "Llama-3 8B",
"llama 3 8b" and "llama_3_8b" all match the slug "llama-3-8b".

An image or 3D side is checked by what its stored file still says besides its content (text chunks, EXIF,
glTF names, PLY comments: arena.media.media_strings). Files are rewritten without metadata on the way in
(arena.media.media_sanitise); reading the stored file at vote time means that a rewrite that missed something,
or a file stored before rewriting existed, cannot carry a counted vote.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

_SEPARATORS = re.compile(r"[\s_\-]+")
_MIN_TERM_LENGTH = 3


def _fold(text: str) -> str:
    return _SEPARATORS.sub(" ", text.lower())


@dataclass(frozen=True)
class Leak:
    side: str
    term: str
    where: str = "answer"  # or "file": the side's stored file's metadata

    @property
    def reason(self) -> str:
        if self.where == "file":
            return f"identity leak: the file of side {self.side.upper()} names {self.term!r} in its metadata"
        return f"identity leak: answer {self.side.upper()} names {self.term!r}"


class _Side(Protocol):
    """What the check reads of a generation (arena.models.Generation)."""

    side: str
    output: str
    media_name: str
    media_format: str


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


def generations_leak_find(generations: Sequence[_Side], terms: list[str]) -> Leak | None:
    """The vote's check: every answer's text, then what metadata each side's stored file still carries."""
    leak = leak_find([(g.side, g.output) for g in generations], terms)
    if leak is not None or not terms:
        return leak
    for g in generations:
        if not g.media_name:
            continue
        found = leak_find([(g.side, text) for text in _file_strings(g.media_name, g.media_format)], terms)
        if found is not None:
            return Leak(found.side, found.term, where="file")
    return None


def _file_strings(name: str, fmt: str) -> list[str]:
    """A stored file's metadata strings; none when it cannot be read (a file the voter could not be served
    either names nothing to them)."""
    from arena.media import MediaRejected, media_strings_stored

    try:
        return media_strings_stored(name, fmt)
    except (OSError, MediaRejected, ValueError):
        logger.warning("could not read stored file %s for the identity-leak check", name, exc_info=True)
        return []
