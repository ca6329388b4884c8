"""Reads for the leaderboard pages and API."""

from __future__ import annotations

from typing import Any

from arena.models import Modality, ModelEntry
from arena.selectors import model_thumbnails
from ranking.models import LeaderboardSnapshot
from ranking.publication import snapshot_public

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


def board_payload(*, modality: str, category: str = "", style_control: bool = False) -> dict[str, Any]:
    """The JSON a leaderboard page renders: the latest snapshot plus the rating history."""
    snapshot = snapshot_latest(modality=modality, category=category, style_control=style_control)
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
