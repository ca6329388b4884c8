"""Boards beside the overall one: categories decided from the user's prompts, output formats of image and 3D
battles, and one board per voting criterion (ARENA_VOTE_CRITERIA)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from django.conf import settings

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


# Image and 3D: a battle joins a format board when both sides' outputs share the format (3D Arena found
# splats and textured meshes rated well apart from meshes and untextured ones: they get boards of their own).
FORMAT_BOARDS = {
    "format:mesh": "Meshes",
    "format:splat": "Gaussian splats",
    "format:textured": "Textured meshes",
    "format:untextured": "Untextured meshes",
}

CRITERION_LABELS = {
    "geometry": "Geometry",
    "geometry_details": "Geometry details",
    "texture": "Texture",
    "coherence": "Geometry-texture coherence",
    "alignment": "Prompt alignment",
    "quality": "Visual quality",
    "aesthetics": "Aesthetics",
}
CRITERION_PREFIX = "criterion:"


def criterion_label(key: str) -> str:
    return CRITERION_LABELS.get(key, key.replace("_", " ").capitalize())


def vote_criteria(modality: str) -> list[dict[str, str]]:
    """The criteria a voter may judge separately in this modality's battles, in order."""
    return [{"key": k, "label": criterion_label(k)} for k in settings.ARENA_VOTE_CRITERIA.get(modality, [])]


def board_labels() -> dict[str, str]:
    """Every board key a leaderboard may be asked for, with its label ("" is overall, not listed)."""
    labels = dict(CATEGORIES) | FORMAT_BOARDS
    for keys in settings.ARENA_VOTE_CRITERIA.values():
        for key in keys:
            labels[CRITERION_PREFIX + key] = f"Criterion: {criterion_label(key)}"
    return labels


def format_categories(sides: Iterable[tuple[str, dict]]) -> list[str]:
    """Format boards for a battle from (media_kind, media_meta) of its two final outputs."""
    sides = list(sides)
    if len(sides) != 2 or not all(kind for kind, _ in sides):
        return []
    kinds = {kind for kind, _ in sides}
    if kinds == {"splat"}:
        return ["format:splat"]
    if kinds != {"mesh"}:
        return []
    found = ["format:mesh"]
    textured = {bool(meta.get("textured")) for _, meta in sides}
    if textured == {True}:
        found.append("format:textured")
    elif textured == {False}:
        found.append("format:untextured")
    return found
