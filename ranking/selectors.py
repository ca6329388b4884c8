"""Reads for the leaderboard pages and API."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from arena.models import Modality, ModelEntry
from arena.selectors import model_thumbnails
from ranking.models import LeaderboardSnapshot, PairTally
from ranking.publication import snapshot_public, snapshot_public_id

HISTORY_POINTS = 30


def snapshot_latest(
    *, modality: str, category: str = "", style_control: bool = False
) -> LeaderboardSnapshot | None:
    """The board the public sees: the snapshot staff froze, if any, else the latest published one."""
    return snapshot_public(modality=modality, category=category, style_control=style_control)


def rating_history(*, modality: str, category: str = "", style_control: bool = False) -> list[dict[str, Any]]:
    """Each model's rating over the last snapshots, oldest first, for the history plot."""
    snapshots = (
        LeaderboardSnapshot.objects.filter(
            modality=modality, category=category, style_control=style_control, published=True
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", "data")[:HISTORY_POINTS]
    )
    return [
        {"at": created.isoformat(), "ratings": {m["slug"]: m["rating"] for m in data.get("models", [])}}
        for created, data in reversed(list(snapshots))
    ]


# A board's page is read far more often than it changes: its payload is kept per public snapshot (a new,
# published, frozen or unfrozen snapshot is a new key) and at most this long, for the history and thumbnails.
BOARD_CACHE_SECONDS = 30


def _board_key(kind: str, snapshot_id: int | None, modality: str, category: str, style: bool) -> str:
    return f"arena:{kind}:{modality}:{category}:{int(style)}:{snapshot_id or 0}"


def board_page_key(*, snapshot_id: int | None, modality: str, category: str, style_control: bool) -> str:
    """A cache key for a rendering of this board, new whenever its public snapshot changes."""
    return _board_key("board-page", snapshot_id, modality, category, style_control)


_UNKNOWN = -1


def board_payload(
    *, modality: str, category: str = "", style_control: bool = False, snapshot_id: int | None = _UNKNOWN
) -> dict[str, Any]:
    """The JSON a leaderboard page renders: the public snapshot plus the rating history. A caller that has
    just read the public snapshot's id passes it (snapshot_public_id)."""
    if snapshot_id == _UNKNOWN:
        snapshot_id = snapshot_public_id(modality=modality, category=category, style_control=style_control)
    key = _board_key("board", snapshot_id, modality, category, style_control)
    payload = cache.get(key)
    if payload is None:
        snapshot = LeaderboardSnapshot.objects.filter(id=snapshot_id).first() if snapshot_id else None
        payload = _board_payload(snapshot, modality=modality, category=category, style_control=style_control)
        cache.set(key, payload, BOARD_CACHE_SECONDS)
    return payload


def board_categories(modality: str) -> set[str]:
    """The boards of a modality that have votes, for the page's category menu."""
    key = f"arena:board-categories:{modality}"
    present = cache.get(key)
    if present is None:
        present = set(
            PairTally.objects.filter(modality=modality).values_list("category", flat=True).distinct()
        )
        cache.set(key, present, BOARD_CACHE_SECONDS)
    return present


def _board_payload(
    snapshot: LeaderboardSnapshot | None, *, modality: str, category: str, style_control: bool
) -> dict[str, Any]:
    base: dict[str, Any] = {"modality": modality, "category": category, "style_control": style_control}
    if snapshot is None:
        return {**base, "snapshot": None, "history": [], "thumbnails": {}}
    thumbnails = {}
    if modality != Modality.TEXT:
        models = dict(
            ModelEntry.objects.filter(
                slug__in=[m["slug"] for m in snapshot.data.get("models", [])]
            ).values_list("id", "slug")
        )
        thumbnails = {models[i]: url for i, url in model_thumbnails(list(models)).items()}
    return {
        **base,
        "thumbnails": thumbnails,
        "snapshot": {
            "created_at": snapshot.created_at.isoformat(),
            "n_votes": snapshot.n_votes,
            **snapshot.data,
        },
        "history": rating_history(modality=modality, category=category, style_control=style_control),
    }
