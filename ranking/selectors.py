"""Reads for the leaderboard pages and API."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from arena.disclosure import PublicNames, public_names
from arena.models import Modality
from arena.selectors import model_thumbnails
from ranking.models import LeaderboardSnapshot, PairTally
from ranking.publication import rows_public, snapshot_data_public, snapshot_public, snapshot_public_id

HISTORY_POINTS = 30


def snapshot_latest(
    *, modality: str, category: str = "", style_control: bool = False
) -> LeaderboardSnapshot | None:
    """The board the public sees: the snapshot staff froze, if any, else the latest published one."""
    return snapshot_public(modality=modality, category=category, style_control=style_control)


def rating_history(
    *, modality: str, category: str = "", style_control: bool = False, names: PublicNames | None = None
) -> list[dict[str, Any]]:
    """Each public model's rating over the last snapshots, oldest first, for the history plot (only models
    that may be named now, under their current slugs: see ranking.publication.rows_public)."""
    names = names or public_names()
    snapshots = (
        LeaderboardSnapshot.objects.filter(
            modality=modality, category=category, style_control=style_control, published=True
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", "data")[:HISTORY_POINTS]
    )
    return [
        {
            "at": created.isoformat(),
            "ratings": {m["slug"]: m["rating"] for m in rows_public(data.get("models", []), names)},
        }
        for created, data in reversed(list(snapshots))
    ]


# A board's page is read far more often than it changes: its payload is kept per public snapshot (a new,
# published, frozen or unfrozen snapshot is a new key) and per set of public names (releasing a model, or
# renaming one, is a new key), and at most this long, for the history and thumbnails.
BOARD_CACHE_SECONDS = 30


def _board_key(
    kind: str, snapshot_id: int | None, modality: str, category: str, style: bool, names: PublicNames
) -> str:
    return f"arena:{kind}:{modality}:{category}:{int(style)}:{snapshot_id or 0}:{names.version}"


def board_page_key(
    *, snapshot_id: int | None, modality: str, category: str, style_control: bool, names: PublicNames
) -> str:
    """A cache key for a rendering of this board, new whenever its public snapshot or public names change."""
    return _board_key("board-page", snapshot_id, modality, category, style_control, names)


_UNKNOWN = -1


def board_payload(
    *,
    modality: str,
    category: str = "",
    style_control: bool = False,
    snapshot_id: int | None = _UNKNOWN,
    names: PublicNames | None = None,
) -> dict[str, Any]:
    """The JSON a leaderboard page renders: the public snapshot plus the rating history, as the public may see
    them. A caller that has just read the public snapshot's id (snapshot_public_id) or the public names passes
    them."""
    if snapshot_id == _UNKNOWN:
        snapshot_id = snapshot_public_id(modality=modality, category=category, style_control=style_control)
    names = names or public_names()
    key = _board_key("board", snapshot_id, modality, category, style_control, names)
    payload = cache.get(key)
    if payload is None:
        snapshot = LeaderboardSnapshot.objects.filter(id=snapshot_id).first() if snapshot_id else None
        board = {"modality": modality, "category": category, "style_control": style_control}
        payload = _board_payload(snapshot, board=board, names=names)
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
    snapshot: LeaderboardSnapshot | None, *, board: dict[str, Any], names: PublicNames
) -> dict[str, Any]:
    if snapshot is None:
        return {**board, "snapshot": None, "history": [], "thumbnails": {}}
    data = snapshot_data_public(snapshot.data, names)
    thumbnails = {}
    if board["modality"] != Modality.TEXT:
        ids = {fields["slug"]: model_id for model_id, fields in names.shown.items()}
        shown = {ids[row["slug"]]: row["slug"] for row in data["models"] if row["slug"] in ids}
        thumbnails = {shown[i]: url for i, url in model_thumbnails(list(shown)).items()}
    return {
        **board,
        "thumbnails": thumbnails,
        "snapshot": {"created_at": snapshot.created_at.isoformat(), "n_votes": snapshot.n_votes, **data},
        "history": rating_history(**board, names=names),
    }
