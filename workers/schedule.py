"""The periodic schedule: beat schedulers that record what they send, and what each periodic task did.

Where beat runs decides whether its messages reach a worker. With Redis, beat is its own process (compose's
`beat` service, `celery -A arena beat`) and uses `RecordingPersistentScheduler`, which keeps its schedule in a
file as Celery's default does. In the embedded default the broker is `memory://`, which exists only inside the
server process: beat must run on a thread of that process (see arena.inprocess), and uses
`RecordingMemoryScheduler`, which keeps no file, so no stop can leave a schedule file behind or locked.

Both record each send in `ScheduleRun`; a `task_postrun` handler records each finish of a scheduled task run
in its periodic form (no arguments). `schedule_status` turns that into what an operator needs: when each entry
last ran, and whether it is overdue.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery.beat import PersistentScheduler, ScheduleEntry, Scheduler
from celery.signals import task_postrun
from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

if TYPE_CHECKING:
    from workers.models import ScheduleRun

logger = logging.getLogger(__name__)

# An entry is overdue when it has not been sent for this many intervals (plus a grace period): one missed beat
# is a slow tick, two in a row is a scheduler that stopped.
OVERDUE_INTERVALS = 2
OVERDUE_GRACE_SECONDS = 30.0
# When this process started: an entry never sent is only overdue once the scheduler has had time to send it.
_PROCESS_STARTED = time.time()


def schedule_entries() -> dict[str, dict[str, Any]]:
    """CELERY_BEAT_SCHEDULE: entry name → {"task": ..., "schedule": seconds, ...}."""
    return dict(settings.CELERY_BEAT_SCHEDULE)


def _interval_seconds(entry: dict[str, Any]) -> float:
    schedule = entry["schedule"]
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    return float(schedule.run_every.total_seconds())  # a celery.schedules.schedule


def schedule_sent_record(*, name: str, task: str) -> None:
    """Beat sent entry `name`. Never raises: a scheduler must keep ticking when the database hiccups."""
    from workers.models import ScheduleRun

    try:
        updated = ScheduleRun.objects.filter(name=name).update(
            task=task, last_sent_at=timezone.now(), sent_count=F("sent_count") + 1
        )
        if not updated:
            ScheduleRun.objects.update_or_create(
                name=name, defaults={"task": task, "last_sent_at": timezone.now(), "sent_count": 1}
            )
    except DatabaseError:
        logger.exception("could not record that beat sent %s", name)


def schedule_finished_record(*, task: str, state: str, detail: str) -> None:
    """A periodic task finished: record it on every schedule entry that runs this task."""
    from workers.models import ScheduleRun

    names = [name for name, entry in schedule_entries().items() if entry["task"] == task]
    now = timezone.now()
    for name in names:
        try:
            updated = ScheduleRun.objects.filter(name=name).update(
                last_finished_at=now,
                last_state=state[:20],
                last_detail=detail[:300],
                finished_count=F("finished_count") + 1,
            )
            if not updated:
                ScheduleRun.objects.get_or_create(
                    name=name,
                    defaults={
                        "task": task,
                        "last_finished_at": now,
                        "last_state": state[:20],
                        "last_detail": detail[:300],
                        "finished_count": 1,
                    },
                )
        except DatabaseError:
            logger.exception("could not record that %s finished", name)


@task_postrun.connect
def _periodic_task_finished(
    sender: Any = None, args: Any = None, kwargs: Any = None, retval: Any = None, state: Any = None, **_: Any
) -> None:
    """Record the finish of a scheduled task run in its periodic form (no arguments: a call with arguments,
    such as probing one model from the admin, is not the schedule running)."""
    if sender is None or args or kwargs:
        return
    task = getattr(sender, "name", "")
    if not any(entry["task"] == task for entry in schedule_entries().values()):
        return
    detail = retval if isinstance(retval, str) else ("" if retval is None else repr(retval))
    schedule_finished_record(task=task, state=str(state or ""), detail=detail)


class _Recording:
    """Mixin for a beat scheduler: record every entry it sends."""

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        super().apply_entry(entry, producer=producer)  # type: ignore[misc]
        schedule_sent_record(name=entry.name, task=entry.task)


class RecordingPersistentScheduler(_Recording, PersistentScheduler):
    """Celery's file-backed scheduler, for the separate beat process (CELERY_BEAT_SCHEDULER's default)."""


class RecordingMemoryScheduler(_Recording, Scheduler):
    """An in-memory scheduler for the beat thread of the embedded default: nothing on disk to leave locked."""


@dataclass(frozen=True)
class ScheduleStatus:
    name: str
    task: str
    every_seconds: float
    last_sent_at: datetime | None
    last_finished_at: datetime | None
    last_state: str
    last_detail: str
    overdue: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "every_seconds": self.every_seconds,
            "last_sent_at": self.last_sent_at.isoformat() if self.last_sent_at else None,
            "last_finished_at": self.last_finished_at.isoformat() if self.last_finished_at else None,
            "last_state": self.last_state,
            "last_detail": self.last_detail,
            "overdue": self.overdue,
        }


def _overdue(last_sent: datetime | None, every: float, now: float) -> bool:
    allowed = OVERDUE_INTERVALS * every + OVERDUE_GRACE_SECONDS
    since = last_sent.timestamp() if last_sent else _PROCESS_STARTED
    return now - since > allowed


def entry_status(name: str, row: ScheduleRun | None, *, now: float | None = None) -> ScheduleStatus | None:
    """One schedule entry's status from its row (None: no row yet), or None if `name` is not scheduled."""
    entry = schedule_entries().get(name)
    if entry is None:
        return None
    every = _interval_seconds(entry)
    sent = row.last_sent_at if row else None
    return ScheduleStatus(
        name=name,
        task=entry["task"],
        every_seconds=every,
        last_sent_at=sent,
        last_finished_at=row.last_finished_at if row else None,
        last_state=row.last_state if row else "",
        last_detail=row.last_detail if row else "",
        overdue=_overdue(sent, every, time.time() if now is None else now),
    )


def schedule_status() -> list[ScheduleStatus]:
    """Every schedule entry with when it last ran and whether beat is late with it (one query)."""
    from workers.models import ScheduleRun

    rows = {row.name: row for row in ScheduleRun.objects.all()}
    now = time.time()
    statuses = (entry_status(name, rows.get(name), now=now) for name in sorted(schedule_entries()))
    return [status for status in statuses if status is not None]
