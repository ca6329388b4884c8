"""How many leaderboard snapshots are kept: every one published by a decision, and a thinned history.

Every board is recomputed a few seconds after votes and every ARENA_LEADERBOARD_REFRESH_SECONDS, so snapshots
pile up (about 90 votes made 351). Most add nothing: the next one an hour later says the same, a bit better.
`snapshot_retention` keeps, for each board (modality, category, style_control):

- its latest snapshot, and its public one (ranking.publication: the latest frozen, else the latest published);
- every frozen snapshot, and every snapshot an audit entry names: staff published, unpublished, froze or
  unfroze it (the log's undo needs the row, and what was made public by a decision stays citable);
- everything from the last `keep_all` (a page that just read a snapshot's id still finds it);
- then per hour for `hourly` (a day), per UTC day before that: the latest snapshot of the hour or day, and its
  latest published one, so the rating-history plot (ranking.selectors.rating_history, which reads published
  snapshots) keeps a point in every hour and every day it had one.

"Published" above means published by a decision. With ARENA_LEADERBOARD_AUTO_PUBLISH (the default) every
computed snapshot carries `published=True` without anyone deciding; keeping all of those would keep them
all, so they are thinned like the rest, always keeping the latest published one of each hour or day. With
auto-publish off, every published snapshot was published by staff (an audit entry) and none is deleted.

The rest is deleted. Running it again at once deletes nothing more (what a run keeps is exactly what the
next one would choose among the rows left), two runs at once delete each row once, and the delete itself
checks again, in the same statement, that a row is neither frozen nor named by an audit entry (staff may
have acted since the rows were read). Snapshots kept per hour are thinned to one per day by the runs after
they turn a day old.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import CharField, Exists, OuterRef
from django.db.models.functions import Cast
from django.utils import timezone

from arena.models import AuditEntry
from ranking.models import LeaderboardSnapshot

SNAPSHOT_TARGET = LeaderboardSnapshot._meta.label_lower  # audit entries' target_type for snapshots
_DELETE_CHUNK = 1000


@dataclass(frozen=True)
class RetentionPolicy:
    keep_all: timedelta = timedelta(minutes=15)
    hourly: timedelta = timedelta(days=1)  # one per hour up to this age, one per UTC day after it


@dataclass
class RetentionResult:
    examined: int = 0
    deleted: int = 0  # with dry_run: how many would be
    dry_run: bool = False
    boards: dict[str, tuple[int, int]] = field(default_factory=dict)  # board -> (kept, deleted)

    @property
    def kept(self) -> int:
        return self.examined - self.deleted

    def line(self) -> str:
        """One line for operators (recorded by workers.schedule when beat runs it)."""
        deleted = "to delete (dry run)" if self.dry_run else "deleted"
        return f"snapshots: {self.examined} examined, {self.deleted} {deleted}, {self.kept} kept"


@dataclass(frozen=True)
class _Row:
    id: int
    board: tuple[str, str, bool]
    created_at: datetime
    published: bool
    frozen: bool


def _board_label(board: tuple[str, str, bool]) -> str:
    modality, category, style = board
    return f"{modality}/{category or 'overall'}{' (style)' if style else ''}"


def _bucket(created_at: datetime, now: datetime, policy: RetentionPolicy) -> tuple[str, int]:
    seconds = int(created_at.timestamp())
    if now - created_at <= policy.hourly:
        return ("hour", seconds // 3600)
    return ("day", seconds // 86400)


def _latest(rows: Iterable[_Row]) -> _Row | None:
    return max(rows, key=lambda r: (r.created_at, r.id), default=None)


def _board_keep(rows: list[_Row], audited: set[int], now: datetime, policy: RetentionPolicy) -> set[int]:
    """The ids kept among one board's snapshots."""
    keep = {r.id for r in rows if r.frozen or r.id in audited or now - r.created_at <= policy.keep_all}
    frozen = _latest(r for r in rows if r.frozen)
    public = frozen or _latest(r for r in rows if r.published)
    keep |= {r.id for r in (_latest(rows), public) if r is not None}
    buckets: dict[tuple[str, int], list[_Row]] = {}
    for row in rows:
        buckets.setdefault(_bucket(row.created_at, now, policy), []).append(row)
    for bucket in buckets.values():
        for chosen in (_latest(bucket), _latest(r for r in bucket if r.published)):
            if chosen is not None:
                keep.add(chosen.id)
    return keep


def _rows() -> dict[tuple[str, str, bool], list[_Row]]:
    boards: dict[tuple[str, str, bool], list[_Row]] = {}
    fields = ("id", "modality", "category", "style_control", "created_at", "published", "frozen")
    for sid, modality, category, style, created, published, frozen in (
        LeaderboardSnapshot.objects.values_list(*fields).iterator(chunk_size=5000)
    ):
        board = (modality, category, style)
        boards.setdefault(board, []).append(_Row(sid, board, created, published, frozen))
    return boards


def _audited_ids() -> set[int]:
    ids = AuditEntry.objects.filter(target_type=SNAPSHOT_TARGET).values_list("target_id", flat=True)
    return {int(i) for i in ids.distinct() if i.isdigit()}


def _delete(ids: list[int]) -> int:
    """Delete these snapshots unless, by now, one is frozen or named by an audit entry."""
    named = AuditEntry.objects.filter(
        target_type=SNAPSHOT_TARGET, target_id=Cast(OuterRef("id"), output_field=CharField())
    )
    deleted = 0
    for start in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[start : start + _DELETE_CHUNK]
        doomed = LeaderboardSnapshot.objects.filter(id__in=chunk, frozen=False).exclude(Exists(named))
        deleted += doomed.delete()[0]
    return deleted


def snapshot_retention(
    *, now: datetime | None = None, policy: RetentionPolicy | None = None, dry_run: bool = False
) -> RetentionResult:
    """Thin the stored snapshots of every board (see the module docstring for what is kept). Takes no lock:
    the delete re-checks, per row, what staff may have changed since the rows were read."""
    now = now or timezone.now()
    policy = policy or RetentionPolicy()
    audited = _audited_ids()
    result = RetentionResult(dry_run=dry_run)
    doomed: list[int] = []
    for board, rows in sorted(_rows().items()):
        keep = _board_keep(rows, audited, now, policy)
        drop = [r.id for r in rows if r.id not in keep]
        result.examined += len(rows)
        result.boards[_board_label(board)] = (len(keep), len(drop))
        doomed += drop
    result.deleted = len(doomed) if dry_run else _delete(doomed)
    return result
