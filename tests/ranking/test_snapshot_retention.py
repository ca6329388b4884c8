"""Snapshot retention (ranking.retention): the stored history is thinned to one snapshot per hour for a day
and one per day before, while every snapshot staff published or froze, each board's latest and its public
one stay, and the rating-history plot keeps its points."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from arena.models import AuditEntry
from ranking.models import LeaderboardSnapshot
from ranking.publication import snapshot_freeze, snapshot_public, snapshot_publish
from ranking.retention import RetentionPolicy, _delete, snapshot_retention
from ranking.selectors import HISTORY_POINTS, rating_history
from ranking.services import leaderboard_compute
from ranking.tasks import snapshot_retention_task
from tests.ranking.test_leaderboard_site import seed_votes

pytestmark = pytest.mark.django_db

EVERY = timedelta(minutes=10)  # about what the vote debounce and the periodic refresh make on a busy site
DAYS = 3
BOARDS = [("text", "", False), ("text", "", True), ("image", "", False)]


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def admin_user(db):
    from django.contrib.auth.models import User

    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def real_data(make_model, voter, settings) -> dict:
    """The data of a snapshot the real fit made, so the history plot reads real ratings."""
    settings.ARENA_LEADERBOARD_MIN_BATTLES = 1
    models = [make_model(slug=s) for s in ("strong", "middle", "weak")]
    seed_votes(voter, models, n=30)
    snapshot = leaderboard_compute(modality="text")
    data = snapshot.data
    snapshot.delete()
    return data


def history(
    now: datetime, *, boards=BOARDS, published: bool = True, data: dict | None = None
) -> list[LeaderboardSnapshot]:
    """A snapshot every EVERY for DAYS days on each board, oldest first, written with their past times."""
    steps = int(timedelta(days=DAYS) / EVERY)
    made = LeaderboardSnapshot.objects.bulk_create(
        LeaderboardSnapshot(
            modality=modality,
            category=category,
            style_control=style,
            published=published,
            n_votes=steps - k,
            data=data or {"models": []},
        )
        for modality, category, style in boards
        for k in range(steps, -1, -1)
    )
    for snapshot, k in zip(made, [k for _ in boards for k in range(steps, -1, -1)], strict=True):
        snapshot.created_at = now - k * EVERY
    LeaderboardSnapshot.objects.bulk_update(made, ["created_at"], batch_size=500)
    return made


def expected_bucket(created_at: datetime, now: datetime) -> tuple[str, int]:
    """The policy as the issue states it: one per hour for a day, one per (UTC) day after that."""
    seconds = int(created_at.timestamp())
    return ("hour", seconds // 3600) if now - created_at <= timedelta(days=1) else ("day", seconds // 86400)


SETTLED = RetentionPolicy().keep_all  # younger snapshots are all kept


def buckets(rows, now: datetime) -> Counter:
    """How many snapshots each (board, hour or day) holds."""
    return Counter((*board_of(s), expected_bucket(s.created_at, now)) for s in rows)


def board_of(snapshot: LeaderboardSnapshot) -> tuple[str, str, bool]:
    return (snapshot.modality, snapshot.category, snapshot.style_control)


def settled_buckets(rows, now: datetime) -> Counter:
    """buckets() without those holding a snapshot of the last minutes (all of which are kept)."""
    recent = buckets([s for s in rows if now - s.created_at <= SETTLED], now)
    return Counter({key: n for key, n in buckets(rows, now).items() if key not in recent})


def board_latest(modality: str, category: str, style: bool) -> LeaderboardSnapshot:
    return LeaderboardSnapshot.objects.filter(
        modality=modality, category=category, style_control=style
    ).latest("created_at", "id")


@pytest.mark.parametrize("clock", ["00:00:00", "00:07:30", "23:59:59"], ids=["midnight", "minutes-in", "eod"])
def test_three_days_of_refreshes_keep_one_snapshot_per_hour_for_a_day_and_one_per_day_before(clock):
    """Hour and day edges fall differently against the refreshes depending on the clock: try a few."""
    hours, minutes, seconds = map(int, clock.split(":"))
    now = timezone.now().replace(hour=hours, minute=minutes, second=seconds, microsecond=0)
    made = history(now)
    latest = {board: board_latest(*board).id for board in BOARDS}
    public = {(m, c, s): snapshot_public(modality=m, category=c, style_control=s).id for m, c, s in BOARDS}

    result = snapshot_retention(now=now)

    left = list(LeaderboardSnapshot.objects.all())
    assert result.examined == len(made) and result.deleted == len(made) - len(left)
    assert len(left) < len(made) / 10, f"{len(made)} snapshots thinned to {len(left)} only"
    assert set(buckets(left, now)) == set(buckets(made, now)), "every hour of the last day, every day before"
    assert set(settled_buckets(left, now).values()) == {1}, "and only one"
    recent = [s for s in made if now - s.created_at <= SETTLED]
    assert {s.id for s in recent} <= {s.id for s in left}, "the last minutes are kept whole"
    for modality, category, style in BOARDS:
        assert board_latest(modality, category, style).id == latest[(modality, category, style)]
        shown = snapshot_public(modality=modality, category=category, style_control=style)
        assert shown.id == public[(modality, category, style)]
    assert result.line() == f"snapshots: {len(made)} examined, {result.deleted} deleted, {len(left)} kept"


def test_every_snapshot_staff_published_or_froze_stays_and_unreviewed_ones_are_thinned(now, admin_user):
    """ARENA_LEADERBOARD_AUTO_PUBLISH off: an operator reviews and publishes; nothing published is deleted."""
    made = history(now, boards=BOARDS[:1], published=False)
    old = [s for s in made if now - s.created_at > timedelta(days=1)]
    published = old[5:40:7]
    for snapshot in published:
        snapshot_publish(snapshot_id=snapshot.id, published=True, actor_id=admin_user.id, reason="reviewed")
    unpublished = old[50]
    snapshot_publish(snapshot_id=unpublished.id, published=True, actor_id=admin_user.id)
    snapshot_publish(snapshot_id=unpublished.id, published=False, actor_id=admin_user.id, reason="ring")
    frozen = old[60]
    snapshot_freeze(snapshot_id=frozen.id, frozen=True, actor_id=admin_user.id, reason="reviewing votes")
    before_public = snapshot_public(modality="text")

    snapshot_retention(now=now)

    left = set(LeaderboardSnapshot.objects.values_list("id", flat=True))
    assert {s.id for s in published} <= left
    assert unpublished.id in left, "the audit log names it: its undo needs the row"
    assert frozen.id in left and snapshot_public(modality="text") == before_public == frozen
    assert made[-1].id in left, "the board's latest snapshot"
    assert len(left) < len(made) / 10
    entries = AuditEntry.objects.filter(target_type="ranking.leaderboardsnapshot")
    assert {int(e.target_id) for e in entries} <= left


def test_the_history_plot_keeps_a_point_in_every_hour_it_had_one_and_the_board_still_renders(
    client, now, real_data
):
    history(now, boards=BOARDS[:1], data=real_data)
    before = rating_history(modality="text")
    assert len(before) == HISTORY_POINTS

    snapshot_retention(now=now)

    after = rating_history(modality="text")
    left = LeaderboardSnapshot.objects.filter(published=True).count()
    assert len(after) == min(HISTORY_POINTS, left) and len(after) > 24, "a point per hour and per day"
    assert after[-1] == before[-1] and set(after[-1]["ratings"]) == {"strong", "middle", "weak"}

    def hour(point: dict) -> int:
        return int(datetime.fromisoformat(point["at"]).timestamp()) // 3600

    assert {hour(p) for p in before} <= {hour(p) for p in after}
    assert min(p["at"] for p in after) < min(p["at"] for p in before)
    data = client.get("/api/leaderboard/text").json()
    assert data["snapshot"]["n_votes"] == board_latest("text", "", False).n_votes and data["history"] == after
    assert client.get("/leaderboard/text/").status_code == 200


def test_a_dry_run_deletes_nothing_and_a_second_run_deletes_nothing_more(now):
    history(now, boards=BOARDS[:2])
    total = LeaderboardSnapshot.objects.count()
    dry = snapshot_retention(now=now, dry_run=True)
    assert LeaderboardSnapshot.objects.count() == total and dry.deleted > 0
    assert dry.line().endswith(f"{dry.deleted} to delete (dry run), {total - dry.deleted} kept")
    first = snapshot_retention(now=now)
    assert first.deleted == dry.deleted and LeaderboardSnapshot.objects.count() == total - dry.deleted
    second = snapshot_retention(now=now)
    assert second.deleted == 0 and second.examined == total - dry.deleted
    a_day_later = snapshot_retention(now=now + timedelta(days=1))
    assert a_day_later.deleted > 0, "the hourly ones thin to daily as they age"
    assert set(settled_buckets(LeaderboardSnapshot.objects.all(), now + timedelta(days=1)).values()) == {1}


def test_a_snapshot_frozen_or_published_by_staff_after_the_rows_were_read_is_not_deleted(now, admin_user):
    """The delete checks again in its own statement: staff may act between the read and the delete."""
    frozen, published, plain = (
        LeaderboardSnapshot.objects.create(modality="text", data={"models": []}) for _ in range(3)
    )
    snapshot_freeze(snapshot_id=frozen.id, frozen=True, actor_id=admin_user.id)
    snapshot_publish(snapshot_id=published.id, published=True, actor_id=admin_user.id)
    assert _delete([frozen.id, published.id, plain.id]) == 1
    assert set(LeaderboardSnapshot.objects.values_list("id", flat=True)) == {frozen.id, published.id}


def test_an_empty_table_and_a_lone_snapshot_are_left_alone(now):
    assert snapshot_retention(now=now).line() == "snapshots: 0 examined, 0 deleted, 0 kept"
    lone = LeaderboardSnapshot.objects.create(modality="3d", data={"models": []})
    LeaderboardSnapshot.objects.filter(id=lone.id).update(created_at=now - timedelta(days=400))
    assert snapshot_retention(now=now).deleted == 0
    assert LeaderboardSnapshot.objects.filter(id=lone.id).exists()


def test_the_command_reports_each_board_and_the_task_thins_as_the_command_does(now):
    history(timezone.now(), boards=BOARDS[:2])
    out = io.StringIO()
    call_command("snapshot_retention", "--dry-run", "--boards", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("text/overall: ") and "to delete" in lines[0]
    assert lines[1].startswith("text/overall (style): ")
    assert "(dry run)" in lines[-1]
    total = LeaderboardSnapshot.objects.count()
    line = snapshot_retention_task()
    assert line.startswith(f"snapshots: {total} examined, ") and LeaderboardSnapshot.objects.count() < total
    out = io.StringIO()
    call_command("snapshot_retention", stdout=out)
    assert " 0 deleted" in out.getvalue()


def test_beat_runs_the_task_on_the_ranking_queue_at_an_interval_from_the_environment():
    from arena.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["snapshot-retention"]
    assert entry["task"] in app.tasks and entry["options"] == {"queue": "ranking"}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='arena.settings'; django.setup(); "
        "from django.conf import settings; "
        "print(settings.CELERY_BEAT_SCHEDULE['snapshot-retention']['schedule'])"
    )

    def run(value: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "ARENA_VAR_DIR": "/tmp/arena-settings-test"}
        env["ARENA_SNAPSHOT_RETENTION_SECONDS"] = value
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )

    assert run("120").stdout.strip() == "120.0"
    refused = run("0")
    assert refused.returncode != 0 and "ARENA_SNAPSHOT_RETENTION_SECONDS" in refused.stderr

