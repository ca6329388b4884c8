"""Leaderboard snapshots as JSON or CSV: the public board of each board key, or a board's full history.

An export names only the models the public may see (ranking.publication.snapshot_data_public); staff who need
every stored row ask for it (`with_unreleased`, the command's --with-unreleased).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson

from ranking.models import LeaderboardSnapshot
from ranking.publication import snapshot_data_public, snapshot_public

MODEL_COLUMNS = (
    "rank_ub",
    "slug",
    "name",
    "organization",
    "rating",
    "lower",
    "upper",
    "battles",
    "win_rate",
    "provisional",
)
SNAPSHOT_COLUMNS = (
    "snapshot_id",
    "modality",
    "category",
    "style_control",
    "created_at",
    "n_votes",
    "published",
    "frozen",
)


def boards() -> list[tuple[str, str, bool]]:
    """Every (modality, category, style_control) that has at least one snapshot."""
    keys = LeaderboardSnapshot.objects.values_list("modality", "category", "style_control").distinct()
    return sorted(set(keys))


def public_snapshots(*, modality: str | None = None) -> list[LeaderboardSnapshot]:
    out = []
    for board_modality, category, style in boards():
        if modality and board_modality != modality:
            continue
        snapshot = snapshot_public(modality=board_modality, category=category, style_control=style)
        if snapshot is not None:
            out.append(snapshot)
    return out


def snapshot_dict(snapshot: LeaderboardSnapshot, *, with_unreleased: bool = False) -> dict[str, Any]:
    data = snapshot.data if with_unreleased else snapshot_data_public(snapshot.data)
    return {
        "snapshot_id": snapshot.id,
        "modality": snapshot.modality,
        "category": snapshot.category,
        "style_control": snapshot.style_control,
        "created_at": snapshot.created_at.isoformat(),
        "n_votes": snapshot.n_votes,
        "published": snapshot.published,
        "frozen": snapshot.frozen,
        **data,
    }


def snapshots_json(snapshots: Iterable[LeaderboardSnapshot], *, with_unreleased: bool = False) -> bytes:
    rows = [snapshot_dict(s, with_unreleased=with_unreleased) for s in snapshots]
    return orjson.dumps(rows, option=orjson.OPT_INDENT_2)


def snapshots_csv(snapshots: Iterable[LeaderboardSnapshot], *, with_unreleased: bool = False) -> bytes:
    """One row per model per snapshot: the snapshot's key and state, then the model's rating and marks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*SNAPSHOT_COLUMNS, *MODEL_COLUMNS])
    for snapshot in snapshots:
        head = snapshot_dict(snapshot, with_unreleased=with_unreleased)
        for model in head.get("models", []):
            writer.writerow(
                [*(head[c] for c in SNAPSHOT_COLUMNS), *(model.get(c, "") for c in MODEL_COLUMNS)]
            )
    return buffer.getvalue().encode()
