"""Which leaderboard snapshot the public sees, and the staff writes that decide it.

A board is one (modality, category, style_control). Its public snapshot is:

1. the latest *frozen* snapshot of the board, if any is frozen: freezing pins what the public sees while newer
   snapshots keep being computed (say, while suspicious votes are reviewed);
2. otherwise the latest *published* snapshot;
3. otherwise none (the page says there is no board yet).

Snapshots are published when computed if ARENA_LEADERBOARD_AUTO_PUBLISH is on (the default); with it off an
operator reviews each one and publishes it from the admin. Unpublishing the latest falls back to the one
before it. Every change writes an audit entry and can be reverted from the log.

A snapshot stores every model with counted votes; what the public reads of it goes through
snapshot_data_public, which leaves out the models that may not be named yet (arena.disclosure: unreleased).
Filtering when read, not when computed, means a model's release shows it at once with all its earlier votes.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from arena.curation import fields_change
from arena.disclosure import PublicNames, public_names
from arena.models import AuditEntry
from ranking.models import LeaderboardSnapshot


def board_snapshots(*, modality: str, category: str = "", style_control: bool = False) -> QuerySet:
    return LeaderboardSnapshot.objects.filter(
        modality=modality, category=category, style_control=style_control
    ).order_by("-created_at", "-id")


def snapshot_public(
    *, modality: str, category: str = "", style_control: bool = False
) -> LeaderboardSnapshot | None:
    board = board_snapshots(modality=modality, category=category, style_control=style_control)
    return board.filter(frozen=True).first() or board.filter(published=True).first()


def snapshot_public_id(*, modality: str, category: str = "", style_control: bool = False) -> int | None:
    """The public snapshot's id alone (what cache keys need), without reading its data."""
    board = board_snapshots(modality=modality, category=category, style_control=style_control)
    ids = board.values_list("id", flat=True)
    return ids.filter(frozen=True).first() or ids.filter(published=True).first()


def rows_public(rows: list[dict[str, Any]], names: PublicNames) -> list[dict[str, Any]]:
    """A board's rows as the public sees them (arena.disclosure.PublicNames.row): models that may not be named
    are left out, the others carry their current public names. When a row was left out, Rank (UB) is counted
    again among the rows shown (a hidden model above would otherwise show as a gap)."""
    shown = [public for row in rows if (public := names.row(row)) is not None]
    if len(shown) < len(rows):
        shown = _ranks_recount(shown)
    return shown


def _ranks_recount(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rank (UB) among these rows, as ranking.engine computes it: one plus the number of established (not
    provisional) models whose lower bound lies above this row's upper bound."""
    if not all(k in row for row in rows for k in ("lower", "upper", "rank_ub")):
        return rows
    established = [row["lower"] for row in rows if not row.get("provisional")]
    return [{**row, "rank_ub": 1 + sum(lower > row["upper"] for lower in established)} for row in rows]


def snapshot_data_public(data: dict[str, Any], names: PublicNames | None = None) -> dict[str, Any]:
    """A snapshot's stored data as the public may see it: its rows (rows_public) and the pair matrices of the
    models shown. Totals (n_battles) count every counted vote, as the fit does: the ratings stay right."""
    names = names or public_names()
    rows = data.get("models", [])
    shown = rows_public(rows, names)
    public = {**data, "models": shown}
    pairs = data.get("pairs")
    if pairs is not None:
        public["pairs"] = _pairs_public(pairs, rows, names)
    return public


def _pairs_public(pairs: dict[str, Any], rows: list[dict[str, Any]], names: PublicNames) -> dict[str, Any]:
    """The pair matrices restricted to the models shown, in their order (the stored order is the rows')."""
    by_slug = {row.get("slug"): row for row in rows}
    keep, slugs = [], []
    for i, slug in enumerate(pairs.get("models", [])):
        public = names.row(by_slug.get(slug, {"slug": slug}))
        if public is not None:
            keep.append(i)
            slugs.append(public["slug"])
    matrices = {
        key: [[pairs[key][i][j] for j in keep] for i in keep]
        for key in ("battles", "win_rate")
        if key in pairs
    }
    return {**pairs, "models": slugs, **matrices}


def snapshot_publish(
    *, snapshot_id: int, published: bool, actor_id: int, reason: str = ""
) -> AuditEntry | None:
    return fields_change(
        model=LeaderboardSnapshot,
        target_id=snapshot_id,
        changes={"published": published},
        action="leaderboard.publish" if published else "leaderboard.unpublish",
        actor_id=actor_id,
        reason=reason,
    )


def snapshot_freeze(*, snapshot_id: int, frozen: bool, actor_id: int, reason: str = "") -> AuditEntry | None:
    return fields_change(
        model=LeaderboardSnapshot,
        target_id=snapshot_id,
        changes={"frozen": frozen},
        action="leaderboard.freeze" if frozen else "leaderboard.unfreeze",
        actor_id=actor_id,
        reason=reason,
    )
