"""The periodic schedule runs in every deployment mode; stopping the embedded default leaves nothing behind.

The embedded default is started exactly as `./bin/run` starts it (tests/support/embedded.py): SQLite, the
in-memory broker, the worker and beat on threads of the server. Each periodic task must have its effect there:
a stuck generation swept, a model in outage probed back, a leaderboard refreshed, a fraud sweep recorded.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from tests.ops.procs import Process, service_env, wait_until, worker_start
from tests.support.embedded import EmbeddedSite
from workers.models import ScheduleRun

pytestmark = pytest.mark.slow

SHORT_SCHEDULES = {
    "ARENA_SWEEP_SECONDS": "1",
    "ARENA_PROBE_SECONDS": "1",
    "ARENA_LEADERBOARD_REFRESH_SECONDS": "2",
    "ARENA_FRAUD_SWEEP_SECONDS": "2",
    "ARENA_SNAPSHOT_RETENTION_SECONDS": "2",
}

# Run in the site's own `manage.py shell` before the server starts: one voted battle (so a leaderboard can be
# fitted and the fraud sweep has a vote to scan), one battle whose two generations are stuck in `running`
# since yesterday (their worker vanished), and a demo model put into outage. No snapshot exists yet.
PREPARE = """
from datetime import timedelta
from django.utils import timezone
from arena.models import Generation, ModelEntry
from arena.services import battle_create
from ranking.models import LeaderboardSnapshot
from voting.models import Voter
from voting.services import vote_cast
from workers.services import generation_run

voter = Voter.objects.create(session_hash="e" * 64)
voted = battle_create(voter=voter, modality="text", prompt_text="Name three rivers in Europe.")
for gen in Generation.objects.filter(battle=voted):
    generation_run(generation_id=gen.id)
vote_cast(code=voted.code, voter=voter, choice="a")
stuck = battle_create(voter=voter, modality="text", prompt_text="Is anyone there?")
yesterday = timezone.now() - timedelta(days=1)
Generation.objects.filter(battle=stuck).update(status="running", started_at=yesterday, attempts=1)
down = ModelEntry.objects.filter(modality="text", backend_kind="demo").order_by("slug").first()
ModelEntry.objects.filter(id=down.id).update(outage_since=timezone.now(), consecutive_failures=9)
LeaderboardSnapshot.objects.all().delete()
print(f"STUCK={stuck.code} DOWN={down.id}")
"""


def _prepared(site: EmbeddedSite) -> tuple[str, int]:
    out = site.shell(PREPARE)
    line = next(line for line in out.splitlines() if line.startswith("STUCK="))
    stuck, down = (part.split("=", 1)[1] for part in line.split())
    return stuck, int(down)


def test_every_periodic_task_has_its_effect_in_the_embedded_default() -> None:
    site = EmbeddedSite(env=SHORT_SCHEDULES)
    try:
        # bin/run's steps up to serve, then the state the schedule must repair, then the server.
        site.manage("migrate", "--noinput", "-v0")
        site.manage("seed_demo")
        stuck, down = _prepared(site)
        assert site.query("SELECT outage_since FROM arena_modelentry WHERE id = ?", (down,))[0][0] is not None
        site.start()

        def swept() -> bool:
            rows = site.query(
                "SELECT g.status FROM arena_generation g JOIN arena_battle b ON b.id = g.battle_id "
                "WHERE b.code = ?",
                (stuck,),
            )
            return len(rows) == 2 and all(status in ("done", "failed") for (status,) in rows)

        site.wait_for(swept, 30, "the stuck generations swept and finished")
        site.wait_for(
            lambda: (
                site.query("SELECT outage_since FROM arena_modelentry WHERE id = ?", (down,))[0][0] is None
            ),
            30,
            "the model in outage probed back",
        )
        site.wait_for(
            lambda: site.query("SELECT count(*) FROM ranking_leaderboardsnapshot")[0][0] > 0,
            30,
            "a leaderboard snapshot from the periodic refresh",
        )
        site.wait_for(
            lambda: bool(
                site.query(
                    "SELECT 1 FROM workers_schedulerun WHERE name = 'fraud-sweep' "
                    "AND last_detail LIKE '1 votes scanned%'"
                )
            ),
            30,
            "a fraud sweep that scanned the vote",
        )
        ready = httpx.get(f"{site.base_url}/readyz?strict=1", timeout=10)
        assert ready.status_code == 200, ready.text
        entries = ready.json()["checks"]["schedule"]["detail"]
        names = {"generation-sweep", "model-probe", "leaderboards", "fraud-sweep", "snapshot-retention"}
        assert set(entries) == names
        for name, entry in entries.items():
            assert entry["last_sent_at"] and entry["last_finished_at"], (name, entry)
            assert entry["last_state"] == "SUCCESS" and not entry["overdue"], (name, entry)
        # The in-memory scheduler keeps no file: nothing to leave behind or locked.
        assert not list(site.var_dir.glob("celerybeat-schedule*"))
    finally:
        site.stop()
        site._cleanup()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_embedded_default_leaves_no_process_behind(signum: int) -> None:
    with EmbeddedSite() as site:
        assert site.process is not None
        # One process: the worker and beat are threads of the server, not children.
        assert site.session_processes() == [site.process.pid]
        site.signal(signum)
        site.process.wait(30)
        assert site.process.returncode == 0, site.log()
        assert site.session_processes() == [], "a process of the server outlived it"
        log = site.log()
        assert "In-process Celery worker stopped." in log and "Traceback" not in log, log
        assert not list(site.var_dir.glob("celerybeat-schedule*"))


@pytest.mark.django_db(transaction=True)
def test_a_separate_beat_process_records_what_it_sends_and_the_worker_what_it_ran() -> None:
    """The Redis deployment: `celery beat` as its own process (compose's `beat`) and a separate worker."""
    env = service_env(**SHORT_SCHEDULES)
    worker = worker_start(["default", "ranking"], env=env)
    schedule_file = Path(tempfile.mkdtemp(prefix="arena-beat-")) / "celerybeat-schedule"
    beat = Process(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "arena",
            "beat",
            "--loglevel",
            "INFO",
            "-s",
            str(schedule_file),
        ],
        env,
    )
    try:

        def all_ran() -> bool:
            rows = ScheduleRun.objects.filter(last_sent_at__isnull=False, last_finished_at__isnull=False)
            return rows.count() == 5

        wait_until(all_ran, 60, "every schedule entry sent by beat and finished by the worker", beat, worker)
        assert set(ScheduleRun.objects.values_list("name", flat=True)) == {
            "generation-sweep",
            "model-probe",
            "leaderboards",
            "fraud-sweep",
            "snapshot-retention",
        }
    finally:
        beat.stop()
        worker.stop()
    assert beat.popen.returncode is not None


@pytest.mark.django_db(transaction=True)
def test_strict_readiness_names_the_schedule_beat_has_stopped_sending(client, worker) -> None:
    now = timezone.now()
    for name, task in [
        ("generation-sweep", "workers.tasks.generation_sweep_task"),
        ("model-probe", "workers.tasks.model_probe_task"),
        ("leaderboards", "ranking.tasks.leaderboard_refresh_all_task"),
        ("fraud-sweep", "voting.tasks.fraud_sweep_task"),
        ("snapshot-retention", "ranking.tasks.snapshot_retention_task"),
    ]:
        ScheduleRun.objects.create(name=name, task=task, last_sent_at=now, last_finished_at=now)
    assert client.get("/readyz?strict=1").status_code == 200
    # The sweeper runs every 30 s: not sent for an hour means beat is gone.
    ScheduleRun.objects.filter(name="generation-sweep").update(last_sent_at=now - timedelta(hours=1))
    response = client.get("/readyz?strict=1")
    assert response.status_code == 503
    check = response.json()["checks"]["schedule"]
    assert check["ok"] is False and "generation-sweep" in check["detail"]
    assert check["entries"]["generation-sweep"]["overdue"] is True
    assert check["entries"]["model-probe"]["overdue"] is False
    # A plain readiness probe (load balancers) does not depend on beat.
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_what_a_periodic_run_did_is_shown_to_operators_only(client, admin_client, worker) -> None:
    """The fraud sweep's counts would tell a bot whether its votes were caught."""
    ScheduleRun.objects.create(
        name="fraud-sweep",
        task="voting.tasks.fraud_sweep_task",
        last_sent_at=timezone.now(),
        last_detail="40 votes scanned, 3 voters flagged, 12 votes excluded, 0 restored",
    )
    public = client.get("/readyz?strict=1").json()["checks"]["schedule"]
    entries = public.get("entries") or public["detail"]
    assert "last_detail" not in entries["fraud-sweep"]
    assert "flagged" not in client.get("/readyz?strict=1").content.decode()
    staff = admin_client.get("/readyz?strict=1").json()["checks"]["schedule"]
    entries = staff.get("entries") or staff["detail"]
    assert entries["fraud-sweep"]["last_detail"].startswith("40 votes scanned")


@pytest.mark.django_db
def test_the_admin_lists_periodic_tasks_with_their_lateness_in_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
) -> None:
    now = timezone.now()
    ScheduleRun.objects.create(
        name="generation-sweep",
        task="workers.tasks.generation_sweep_task",
        last_sent_at=now - timedelta(hours=1),
    )
    ScheduleRun.objects.create(name="model-probe", task="workers.tasks.model_probe_task", last_sent_at=now)
    with django_assert_max_num_queries(12):  # no query per row: lateness comes from the row itself
        page = admin_client.get("/admin/workers/schedulerun/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "generation-sweep" in html and "model-probe" in html and "30 s" in html
    assert 'alt="False"' in html and 'alt="True"' in html  # one overdue, one on time
