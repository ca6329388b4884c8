"""Importing public dumps: JSON lines or a JSON array, bad records reported by line, good ones kept."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command

from arena.models import Battle, Generation, ModelEntry
from ranking.models import PairTally
from voting.importer import battles_import
from voting.models import Vote

pytestmark = pytest.mark.django_db


def rec(qid: str, a: str = "gpt-4", b: str = "claude-2", winner: str = "model_a", **extra: object) -> dict:
    return {
        "question_id": qid,
        "model_a": a,
        "model_b": b,
        "winner": winner,
        "judge": "arena_user_1",
        "turn": 1,
        "anony": True,
        "language": "English",
        "tstamp": 1700000000.5,
        **extra,
    }


def lines(*items: object) -> bytes:
    return b"\n".join(i if isinstance(i, bytes) else orjson.dumps(i) for i in items) + b"\n"


def run_import(path: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_battles", str(path), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_malformed_records_are_reported_by_line_number_and_every_good_record_lands(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_bytes(
        lines(
            rec("q1"),
            b'{"question_id": "q2", "model_a": "gpt-4", oops}',
            rec("q3", winner="model_c"),
            b"",
            rec("q5", b="gpt-4"),
            rec("q6", winner="tie (bothbad)", conversation_a="hello"),
            [1, 2, 3],
            rec("q8", winner="tie"),
            {"model_a": "gpt-4", "model_b": "claude-2", "winner": "model_b"},
            rec("q10", tstamp="yesterday"),
            rec("q11", winner="model_b"),
        )
    )
    out, err = run_import(path)
    reported = err.splitlines()
    assert reported[0].startswith("dump.jsonl: line 2: not valid JSON (")
    assert reported[1:] == [
        "dump.jsonl: line 3: winner must be one of model_a, model_b, tie, tie (bothbad); got 'model_c'",
        "dump.jsonl: line 5: model_a and model_b are the same model",
        "dump.jsonl: line 6: conversation_a must be a list of messages",
        "dump.jsonl: line 7: a record must be a JSON object",
        "dump.jsonl: line 9: question_id is missing",
        "dump.jsonl: line 10: tstamp must be unix seconds",
    ]
    assert "Imported 3 battles; skipped 0 already present; 7 bad records." in out
    assert sorted(Battle.objects.values_list("code", flat=True)) == ["q1", "q11", "q8"]
    assert sorted(Vote.objects.values_list("choice", flat=True)) == ["a", "b", "tie"]


def test_a_json_array_reports_the_line_where_the_bad_element_starts(tmp_path):
    good = orjson.dumps(rec("q1"), option=orjson.OPT_INDENT_2).decode()
    bad = '{\n  "question_id": "q2",\n  "model_a": "x",\n  "model_b": "y",\n  "winner": 3\n}'
    broken = '{\n  "question_id": "q3", "model_a": }'
    last = orjson.dumps(rec("q4", winner="model_b", category=["coding"])).decode()
    path = tmp_path / "dump.json"
    path.write_text(f"[\n{good},\n{bad},\n{broken},\n{last}\n]\n")
    report = battles_import(path)
    good_lines = good.count("\n") + 1
    assert [loc for loc, _ in report.errors] == [
        f"line {2 + good_lines} (element 2)",
        f"line {2 + good_lines + 6} (element 3)",
    ]
    assert "winner must be one of" in report.errors[0][1] and "not valid JSON" in report.errors[1][1]
    assert report.imported == 2
    assert Vote.objects.get(battle__code="q4").categories == ["coding"]


def test_importing_the_same_dump_twice_changes_nothing_the_second_time(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_bytes(lines(rec("q1"), rec("q2", winner="model_b"), rec("q1")))
    first = battles_import(path)
    tallies = list(PairTally.objects.values_list("lo_won", "hi_won", "ties"))
    second = battles_import(path)
    assert (first.imported, first.skipped_existing) == (2, 1), (
        "a repeated question_id in one file counts once"
    )
    assert (second.imported, second.skipped_existing) == (0, 3)
    assert Battle.objects.count() == 2 and Vote.objects.count() == 2
    assert list(PairTally.objects.values_list("lo_won", "hi_won", "ties")) == tallies


def test_an_imported_battle_keeps_its_conversation_time_and_judge(tmp_path):
    conversation_a = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]
    conversation_b = [
        {**m, "content": m["content"].upper()} if m["role"] == "assistant" else m for m in conversation_a
    ]
    path = tmp_path / "dump.jsonl"
    path.write_bytes(
        lines(rec("q1", conversation_a=conversation_a, conversation_b=conversation_b, language="German"))
    )
    battles_import(path)
    battle = Battle.objects.get(code="q1")
    assert battle.conversation == ["Hi", "Bye"] and battle.status == Battle.Status.VOTED
    assert battle.created_at.timestamp() == 1700000000.5
    outputs = {(g.side, g.turn): g.output for g in Generation.objects.filter(battle=battle)}
    assert outputs == {("a", 0): "Hello!", ("a", 1): "Goodbye.", ("b", 0): "HELLO!", ("b", 1): "GOODBYE."}
    vote = Vote.objects.get(battle=battle)
    assert vote.voter.session_hash == "imported:arena_user_1" and vote.created_at.timestamp() == 1700000000.5
    assert "multi_turn" in vote.categories and "non_english" in vote.categories


def test_a_model_known_here_under_another_modality_is_a_bad_record(tmp_path, make_model):
    make_model(slug="sdxl", modality="image")
    path = tmp_path / "dump.jsonl"
    path.write_bytes(lines(rec("q1", a="sdxl"), rec("q2")))
    report = battles_import(path)
    assert report.errors == [("line 1", "model sdxl exists here as a image model, not text")]
    assert report.imported == 1
    assert set(ModelEntry.objects.values_list("slug", flat=True)) == {"sdxl", "gpt-4", "claude-2"}


def test_votes_marked_not_counted_stay_out_of_the_tallies(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_bytes(lines(rec("q1", counted=False, exclusion_reason="voter banned"), rec("q2")))
    battles_import(path)
    assert Vote.objects.get(battle__code="q1").exclusion_reason == "voter banned"
    assert PairTally.objects.get(category="").lo_won + PairTally.objects.get(category="").hi_won == 1


def test_an_empty_file_imports_nothing(tmp_path):
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "blank.json").write_bytes(b"  \n")
    (tmp_path / "none.json").write_bytes(b"[]")
    for name in ("empty.json", "blank.json", "none.json"):
        report = battles_import(tmp_path / name)
        assert (report.imported, report.errors) == (0, [])
