"""Which leaderboard snapshot the public sees, and the staff writes that decide it.

A board is one (modality, category, style_control). Its public snapshot is:

1. the latest *frozen* snapshot of the board, if any is frozen: freezing pins what the public sees while newer
   snapshots keep being computed (say, while suspicious votes are reviewed);
2. otherwise the latest *published* snapshot;
3. otherwise none (the page says there is no board yet).

Snapshots are published when computed if ARENA_LEADERBOARD_AUTO_PUBLISH is on (the default); with it off an
operator reviews each one and publishes it from the admin. Unpublishing the latest falls back to the one
before it. Every change writes an audit entry and can be reverted from the log.
"""

from __future__ import annotations

from django.db.models import QuerySet

from arena.curation import fields_change
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
