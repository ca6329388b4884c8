"""Export, wipe, import: the same tallies and the same leaderboards come back."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command

from arena.models import Battle, ModelEntry
from ranking.models import LeaderboardSnapshot, PairTally
from ranking.services import leaderboard_compute
from voting.models import Vote, Voter

pytestmark = pytest.mark.django_db

BOARDS = [("text", "", False), ("text", "", True), ("text", "coding", False), ("image", "", False)]


def board(modality: str, category: str, style: bool) -> list[tuple]:
    snapshot = leaderboard_compute(modality=modality, category=category, style_control=style)
    assert snapshot is not None
    fields = ("slug", "rating", "lower", "upper", "rank_ub", "battles", "win_rate", "provisional")
    return [tuple(row[f] for f in fields) for row in snapshot.data["models"]]


def tallies() -> set[tuple]:
    """Tallies by model slug (ids, and so which model is "lo", change on import)."""
    rows = PairTally.objects.values_list(
        "modality", "category", "model_lo__slug", "model_hi__slug", "lo_won", "hi_won", "ties"
    )
    out = set()
    for modality, category, lo, hi, lo_won, hi_won, ties in rows:
        if lo > hi:
            lo, hi, lo_won, hi_won = hi, lo, hi_won, lo_won
        out.add((modality, category, lo, hi, lo_won, hi_won, ties))
    return out


def wipe() -> None:
    Vote.objects.all().delete()
    Battle.objects.all().delete()
    Voter.objects.all().delete()
    PairTally.objects.all().delete()
    LeaderboardSnapshot.objects.all().delete()
    ModelEntry.objects.all().delete()


def export(path: Path) -> list[dict]:
    call_command("export_battles", "--output", str(path), "--with-conversations", "--no-progress")
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_export_then_import_into_an_empty_database_gives_the_same_leaderboards(arena_history, tmp_path):
    votes = arena_history(150)
    assert any(not v.counted for v in votes) and any(v.counted for v in votes)
    before_boards = {key: board(*key) for key in BOARDS}
    before_tallies = tallies()
    first = export(tmp_path / "first.jsonl")

    wipe()
    call_command("import_battles", str(tmp_path / "first.jsonl"), "--no-progress", stdout=io.StringIO())

    assert tallies() == before_tallies
    assert {key: board(*key) for key in BOARDS} == before_boards
    second = export(tmp_path / "second.jsonl")
    assert [r.pop("imported") for r in second] == [True] * len(first)
    assert [{k: v for k, v in r.items() if k != "imported"} for r in first] == second, (
        "a re-export of the imported battles is the original export"
    )


def test_imported_models_are_created_inactive_and_never_sampled(arena_history, tmp_path):
    arena_history(20)
    export(tmp_path / "dump.jsonl")
    wipe()
    call_command("import_battles", str(tmp_path / "dump.jsonl"), "--no-progress", stdout=io.StringIO())
    models = ModelEntry.objects.all()
    assert models and all(not m.active and m.weight == 0 and m.backend_kind == "imported" for m in models)
