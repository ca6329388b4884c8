"""Leaderboard snapshots export as JSON and CSV: the public boards, or one board's history."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from django.core.management import CommandError, call_command

from ranking.models import LeaderboardSnapshot

pytestmark = pytest.mark.django_db

MODELS = [
    {
        "slug": "m1",
        "name": "M1",
        "rating": 1020.0,
        "lower": 1010.0,
        "upper": 1030.0,
        "rank_ub": 1,
        "battles": 400,
        "win_rate": 0.6,
        "provisional": False,
    },
    {
        "slug": "m2",
        "name": "M2",
        "rating": 980.0,
        "lower": 900.0,
        "upper": 1060.0,
        "rank_ub": 1,
        "battles": 12,
        "win_rate": 0.4,
        "provisional": True,
    },
]


def snapshot(**fields: object) -> LeaderboardSnapshot:
    return LeaderboardSnapshot.objects.create(**{"modality": "text", "data": {"models": MODELS}, **fields})


def test_the_public_boards_export_as_json(tmp_path):
    snapshot(published=True, n_votes=412)
    snapshot(published=False)  # newer but unpublished: not public
    snapshot(category="coding", published=True)
    call_command("export_leaderboard", "--output", str(tmp_path / "boards.json"), stderr=io.StringIO())
    boards = orjson.loads((tmp_path / "boards.json").read_bytes())
    assert [(b["category"], b["n_votes"]) for b in boards] == [("", 412), ("coding", 0)]
    assert boards[0]["models"] == MODELS and boards[0]["published"] is True


def test_the_csv_has_one_row_per_model_with_its_provisional_mark(tmp_path):
    snapshot(published=True)
    call_command("export_leaderboard", "--output", str(tmp_path / "boards.csv"), stderr=io.StringIO())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "boards.csv").read_text())))
    assert [(r["slug"], r["provisional"], r["modality"]) for r in rows] == [
        ("m1", "False", "text"),
        ("m2", "True", "text"),
    ]


def test_a_boards_history_includes_every_snapshot_newest_first(tmp_path):
    older, newer = snapshot(n_votes=1), snapshot(n_votes=2)
    path = tmp_path / "history.json"
    call_command(
        "export_leaderboard", "--modality", "text", "--history", "--output", str(path), stderr=io.StringIO()
    )
    assert [b["snapshot_id"] for b in orjson.loads(path.read_bytes())] == [newer.id, older.id]
    with pytest.raises(CommandError, match="--history needs --modality"):
        call_command("export_leaderboard", "--history")
