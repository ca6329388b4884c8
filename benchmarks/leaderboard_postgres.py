"""The leaderboard from a million votes stored in PostgreSQL, end to end.

    python benchmarks/leaderboard_postgres.py [--votes 1000000] [--reuse]

Fills the database `arena_bench_export` with the export benchmark's seed (COPY of models, voters, battles
and votes; see benchmarks/export.py), then times:
  * rebuild: every pair tally recomputed from the stored votes (one SQL statement; the site normally
    keeps tallies current vote by vote and never needs this);
  * board: tallies -> Bradley-Terry + sandwich CIs -> stored snapshot (what each recompute does);
  * end to end: both, i.e. from raw stored votes to a published snapshot.
Target: ≤ 2 s end to end on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _export_benchmark():  # a module loaded by its path: benchmarks is no package
    spec = importlib.util.spec_from_file_location("bench_export", ROOT / "benchmarks" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def measure(votes: int, reuse: bool) -> dict[str, float]:
    bench = _export_benchmark()
    bench.django_setup(fresh=not reuse)
    from voting.models import Vote

    if not reuse or Vote.objects.count() != votes:
        started = time.perf_counter()
        bench.seed(votes, conversations=False)
        print(f"setup: {votes:,} votes stored with COPY in {time.perf_counter() - started:.1f} s")
    from ranking.services import leaderboard_compute
    from ranking.tallies import tally_rebuild

    t0 = time.perf_counter()
    tally_rebuild()
    t1 = time.perf_counter()
    snapshot = leaderboard_compute(modality="text")
    t2 = time.perf_counter()
    assert snapshot is not None and snapshot.n_votes == Vote.objects.filter(counted=True).count()
    return {"rebuild": t1 - t0, "board": t2 - t1, "end_to_end": t2 - t0, "votes": snapshot.n_votes}


def main() -> None:
    parser = argparse.ArgumentParser(description="leaderboard from votes stored in PostgreSQL")
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep a database already seeded to this size")
    args = parser.parse_args()
    result = measure(args.votes, args.reuse)
    print(f"counted votes on the board: {result['votes']:,}")
    print(f"rebuild pair tallies from stored votes   {result['rebuild']:6.2f} s")
    print(f"tallies -> BT + sandwich CIs -> snapshot {result['board']:6.2f} s")
    print(f"end to end                               {result['end_to_end']:6.2f} s   (target <= 2 s)")


if __name__ == "__main__":
    main()
