"""Reading public battle dumps: both layouts, category filters, style features and clear errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from ranking.engine import DumpError, drop_battles, parse_battles, read_battles

META = {
    "sum_user_tokens": 12,
    "sum_assistant_a_tokens": 300,
    "sum_assistant_b_tokens": 100,
    "header_count_a": {"h1": 1, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
    "header_count_b": {"h1": 0, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
    "list_count_a": {"ordered": 0, "unordered": 0},
    "list_count_b": {"ordered": 2, "unordered": 0},
    "bold_count_a": {"**": 1, "__": 0},
    "bold_count_b": {"**": 1, "__": 0},
}

RECORDS = [
    {"question_id": "q1", "model_a": "alpha", "model_b": "beta", "winner": "model_a", "judge": "j1",
     "tstamp": 1.0, "category": ["coding"], "conv_metadata": META},
    {"question_id": "q2", "model_a": "beta", "model_b": "gamma", "winner": "model_b", "judge": "j2",
     "tstamp": 2.0, "category_tag": {"math_v0.1": {"math": True}}},
    {"question_id": "q3", "model_a": "gamma", "model_b": "alpha", "winner": "tie", "judge": "j1",
     "tstamp": 3.0, "category": {"coding": True, "math": False}},
    {"question_id": "q4", "model_a": "alpha", "model_b": "gamma", "winner": "tie (bothbad)", "judge": "j3"},
]  # fmt: skip


def _jsonl(records: list) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in records) + b"\n"


def test_json_lines_and_json_array_dumps_read_the_same() -> None:
    lines = parse_battles(_jsonl(RECORDS))
    array = parse_battles(json.dumps(RECORDS, indent=1).encode())
    assert lines.models == array.models == ["alpha", "beta", "gamma"]
    assert lines.model_a.tolist() == array.model_a.tolist() == [0, 1, 2, 0]
    assert lines.model_b.tolist() == [1, 2, 0, 2]
    assert lines.outcome.tolist() == array.outcome.tolist() == [1.0, 0.0, 0.5, 0.5]
    assert np.isnan(lines.tstamp[3]) and lines.tstamp[:3].tolist() == [1.0, 2.0, 3.0]
    assert lines.judge.tolist() == ["j1", "j2", "j1", "j3"]


def test_blank_lines_are_skipped_but_still_counted_in_line_numbers() -> None:
    data = _jsonl(RECORDS[:2]) + b"\n\n" + b'{"model_a": "alpha", "model_b": "beta"}\n'
    with pytest.raises(DumpError) as info:
        parse_battles(data)
    assert info.value.location == "line 5"
    assert "winner" in str(info.value)


def test_invalid_json_names_its_line() -> None:
    data = _jsonl(RECORDS[:2]) + b'{"model_a": "alpha", "model_b": \n'
    with pytest.raises(DumpError, match=r"^line 3: invalid JSON"):
        parse_battles(data)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"model_a": "alpha", "winner": "model_a"}, "missing required field 'model_b'"),
        ({"model_a": "alpha", "model_b": "beta", "winner": "left"}, "unknown winner 'left'"),
        ({"model_a": "alpha", "model_b": "alpha", "winner": "tie"}, "the same model"),
        ({"model_a": 7, "model_b": "beta", "winner": "tie"}, "'model_a' must be a non-empty string"),
        (["alpha", "beta"], "expected a JSON object"),
        ({"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": "noon"}, "tstamp must be a number"),
    ],
)
def test_malformed_records_are_reported_with_their_line_and_reason(record: object, message: str) -> None:
    with pytest.raises(DumpError) as info:
        parse_battles(_jsonl([RECORDS[0], record]))
    assert info.value.location == "line 2"
    assert message in str(info.value)


def test_a_malformed_element_of_a_json_array_is_named_by_its_position() -> None:
    data = json.dumps([RECORDS[0], RECORDS[1], {"model_a": "x"}]).encode()
    with pytest.raises(DumpError, match=r"^element 3: missing required field 'model_b'"):
        parse_battles(data)


def test_category_filter_accepts_lists_dicts_and_nested_category_tags() -> None:
    assert parse_battles(_jsonl(RECORDS), category="coding").question_id.tolist() == ["q1", "q3"]
    assert parse_battles(_jsonl(RECORDS), category="math").question_id.tolist() == ["q2"]
    assert parse_battles(_jsonl(RECORDS), category="math_v0.1").question_id.tolist() == ["q2"]
    assert len(parse_battles(_jsonl(RECORDS), category="poetry")) == 0


def test_style_features_come_from_conv_metadata_and_are_nan_without_it() -> None:
    battles = parse_battles(_jsonl(RECORDS), style=True)
    assert battles.style is not None and battles.style.shape == (4, 4)
    assert battles.style[0].tolist() == pytest.approx([200 / 401, 1 / 2, -2 / 3, 0.0])
    assert np.all(np.isnan(battles.style[1:]))


def test_malformed_conv_metadata_is_reported_when_style_is_requested() -> None:
    broken = dict(RECORDS[0], conv_metadata={"sum_assistant_a_tokens": 3})
    with pytest.raises(DumpError, match=r"^line 1: malformed conv_metadata"):
        parse_battles(_jsonl([broken]), style=True)
    assert len(parse_battles(_jsonl([broken]))) == 1  # not read unless style control asks for it


def test_flagged_judges_and_questions_can_be_dropped() -> None:
    battles = parse_battles(_jsonl(RECORDS))
    kept = drop_battles(battles, judges={"j1"}, question_ids={"q4"})
    assert kept.question_id.tolist() == ["q2"]
    assert kept.models == battles.models


def test_read_battles_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl"
    path.write_bytes(_jsonl(RECORDS))
    assert len(read_battles(path)) == 4


def test_dump_errors_survive_pickling_with_their_location() -> None:
    error = pickle.loads(pickle.dumps(DumpError("line 7", "missing required field 'winner'")))
    assert error.location == "line 7" and str(error) == "line 7: missing required field 'winner'"
