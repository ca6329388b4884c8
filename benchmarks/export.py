"""Export throughput and memory: a million stored votes out as JSON lines and as Parquet.

    python benchmarks/export.py [--votes 1000000] [--conversations] [--reuse] [--repeat N]

Creates a fresh PostgreSQL database `arena_bench_export` on 127.0.0.1, migrates it, and fills it with COPY:
30 models, 50,000 voters, and one voted battle per vote (a one-turn conversation, categories, the public
dump's conv_metadata; 5% of votes not counted). `--conversations` also stores both answers of every battle
(two Generation rows each) and exports them. `--reuse` keeps a database already filled the same way
(seeding a million votes takes a minute or two); `--repeat N` runs each export N times and reports the
best, with the machine's load beside each run (wall times on a shared machine vary with it).

Each export runs `manage.py export_battles` in a child process, exactly as an operator would; the child's
peak resident memory comes from the kernel (wait4's ru_maxrss), so it includes Python, Django and pyarrow.
Targets: at most 500 MB peak RSS and at least 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = "arena_bench_export"
ENV = {
    "DJANGO_SETTINGS_MODULE": "arena.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "SECRET_KEY": "benchmark-only",
    "ARENA_HASH_SALT": "benchmark-salt",
}
N_MODELS, N_VOTERS = 30, 50_000
PROMPTS = [
    f"Question {i}: explain topic number {i} in a few paragraphs, with an example." for i in range(200)
]
ANSWER = "## Answer\n\nHere is a **clear** explanation.\n\n- first point\n- second point\n\n1. step one\n"


def django_setup(fresh: bool) -> None:
    os.environ.update(ENV)
    os.environ.setdefault("ARENA_VAR_DIR", tempfile.mkdtemp(prefix="arena-bench-export-"))
    if fresh:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB}")
            conn.execute(f"CREATE DATABASE {DB}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _defaults(model: Any, given: list[str]) -> dict[str, Any]:
    """COPY needs every NOT NULL column: the model's defaults for the ones this script does not set."""
    import orjson
    from django.db import models

    now = datetime.now(UTC)
    out: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in given:
            continue
        if isinstance(field, models.DateTimeField):
            out[field.column] = now if (field.auto_now or field.auto_now_add) else None
        elif isinstance(field, models.JSONField):
            out[field.column] = orjson.dumps(field.get_default()).decode()
        elif field.has_default():
            out[field.column] = field.get_default()
        else:
            out[field.column] = None if field.null else ""
    return out


def _copy(model: Any, given: list[str], rows: Any) -> None:
    from django.db import connection

    extra = _defaults(model, given)
    columns = [*given, *extra]
    tail = tuple(extra.values())
    sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row((*row, *tail))


def seed(n_votes: int, conversations: bool) -> None:
    import orjson
    from django.db import connection

    from arena.models import Battle, Generation, ModelEntry
    from voting.models import Vote, Voter

    rng = random.Random(0)
    models = ModelEntry.objects.bulk_create(
        ModelEntry(slug=f"bench-model-{i}", display_name=f"Bench {i}", backend_kind="demo")
        for i in range(N_MODELS)
    )
    model_ids = [m.id for m in models]
    _copy(
        Voter,
        ["id", "code", "session_hash"],
        ((i, f"v_{i:014x}", f"{i:064x}") for i in range(1, N_VOTERS + 1)),
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    prompts = [orjson.dumps([p]).decode() for p in PROMPTS]
    metadata = orjson.dumps(
        {
            "sum_user_tokens": 14,
            "sum_assistant_a_tokens": 230,
            "sum_assistant_b_tokens": 180,
            "header_count_a": {f"h{i}": int(i == 2) for i in range(1, 7)},
            "header_count_b": {f"h{i}": 0 for i in range(1, 7)},
            "list_count_a": {"ordered": 1, "unordered": 2},
            "list_count_b": {"ordered": 0, "unordered": 0},
            "bold_count_a": {"**": 1, "__": 0},
            "bold_count_b": {"**": 0, "__": 0},
        }
    ).decode()
    pairs = [(a, b) for a in model_ids for b in model_ids if a != b]
    plan = [
        (
            rng.choice(pairs),
            rng.randrange(1, N_VOTERS + 1),
            start + timedelta(seconds=rng.randrange(5_000_000)),
        )
        for _ in range(n_votes)
    ]
    _copy(
        Battle,
        [
            "id",
            "code",
            "modality",
            "voter_id",
            "model_a_id",
            "model_b_id",
            "conversation",
            "status",
            "created_at",
        ],
        (
            (i, f"b{i:015x}", "text", voter, a, b, prompts[i % len(prompts)], "voted", at)
            for i, ((a, b), voter, at) in enumerate(plan, start=1)
        ),
    )
    choices = ["a"] * 40 + ["b"] * 40 + ["tie"] * 12 + ["both_bad"] * 8
    categories = ["[]"] * 6 + ['["coding"]'] * 2 + ['["long_query"]', '["coding", "non_english"]']
    _copy(
        Vote,
        [
            "id",
            "battle_id",
            "voter_id",
            "choice",
            "created_at",
            "seconds_to_vote",
            "counted",
            "exclusion_reason",
            "categories",
            "conv_metadata",
        ],
        (
            (
                i,
                i,
                voter,
                rng.choice(choices),
                at + timedelta(seconds=20),
                20.0,
                i % 20 != 0,
                "" if i % 20 else "voter banned",
                categories[i % len(categories)],
                metadata,
            )
            for i, (_, voter, at) in enumerate(plan, start=1)
        ),
    )
    if conversations:
        _copy(
            Generation,
            ["battle_id", "turn", "side", "model_id", "status", "output", "output_tokens"],
            (
                (i, 0, side, model, "done", ANSWER, 40)
                for i, ((a, b), _, _) in enumerate(plan, start=1)
                for side, model in (("a", a), ("b", b))
            ),
        )
    with connection.cursor() as cursor:
        for table in ("voting_voter", "arena_battle", "voting_vote", "arena_generation"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 1)) FROM {table}"
            )
            cursor.execute(f"ANALYZE {table}")


def run_export(fmt: str, out: Path, conversations: bool) -> dict[str, Any]:
    """One export in a child process: its wall time and the kernel's record of its peak memory."""
    args = [
        sys.executable,
        str(ROOT / "manage.py"),
        "export_battles",
        "--output",
        str(out),
        "--no-progress",
        "--skip-checks",
    ]
    if conversations:
        args.append("--with-conversations")
    started = time.perf_counter()
    child = subprocess.Popen(args, env={**os.environ, **ENV}, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"export_battles failed with exit code {child.returncode}")
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,  # the exporting process only, not PostgreSQL
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "bytes": out.stat().st_size,
    }


def _reusable(n_votes: int, conversations: bool) -> bool:
    """Whether the benchmark database exists and holds what this run would seed (then it is kept)."""
    import psycopg

    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB}") as conn:
            votes = conn.execute("SELECT count(*) FROM voting_vote").fetchone()
            answers = conn.execute("SELECT EXISTS (SELECT 1 FROM arena_generation)").fetchone()
    except psycopg.Error:  # no database yet, or not migrated
        return False
    return bool(votes and answers) and votes[0] == n_votes and answers[0] == conversations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--conversations", action="store_true", help="Store and export both answers too.")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Keep the database if it already holds --votes votes (and answers with --conversations).",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="Run each export this many times; the best run is reported."
    )
    parser.add_argument("--keep-files", action="store_true")
    args = parser.parse_args()

    reuse = args.reuse and _reusable(args.votes, args.conversations)
    django_setup(fresh=not reuse)
    if reuse:
        print(f"setup: reusing {DB} ({args.votes:,} votes)", flush=True)
    else:
        started = time.perf_counter()
        seed(args.votes, args.conversations)
        print(
            f"setup: {args.votes:,} votes stored with COPY in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

    from django.db import connections

    connections.close_all()  # the children read a database nobody writes to
    results = {}
    with tempfile.TemporaryDirectory(prefix="arena-export-") as tmp:
        for fmt in ("jsonl", "parquet"):
            out = Path(tmp) / f"battles.{fmt}"
            runs = []
            for _ in range(max(args.repeat, 1)):
                # The machine may be shared: its load (a minute's average of runnable processes) per run.
                load = os.getloadavg()[0]
                result = {**run_export(fmt, out, args.conversations), "load": load}
                result["rows_per_s"] = args.votes / result["seconds"]
                runs.append(result)
                ok = result["peak_rss_mb"] <= 500 and result["rows_per_s"] >= 50_000
                print(
                    f"{fmt:8} {args.votes:,} rows in {result['seconds']:.1f} s "
                    f"= {result['rows_per_s']:,.0f} rows/s "
                    f"(process CPU {result['cpu_seconds']:.1f} s), peak RSS {result['peak_rss_mb']:.0f} MB, "
                    f"file {result['bytes'] / 2**20:.0f} MiB, load {load:.1f} "
                    f"[{'meets' if ok else 'MISSES'} the targets: <= 500 MB, >= 50k rows/s]",
                    flush=True,
                )
            results[fmt] = {**max(runs, key=lambda r: r["rows_per_s"]), "runs": len(runs)}
            if args.keep_files:
                out.rename(ROOT / f"var/bench-battles.{fmt}")
    print(json.dumps({"votes": args.votes, "conversations": args.conversations, "results": results}))


if __name__ == "__main__":
    main()
