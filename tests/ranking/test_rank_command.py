"""`manage.py rank FILE` over public battle dumps."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

MODELS = ["gpt-x", "claude-y", "llama-z", "mistral-w"]


def _dump(tmp_path: Path, n: int = 3000, *, array: bool = False, extra: list | None = None) -> Path:
    """A synthetic dump where strength follows the MODELS order, with metadata and categories."""
    rng = np.random.default_rng(71)
    strength = np.array([0.8, 0.4, 0.0, -0.6])
    records = []
    for i in range(n):
        a, b = rng.choice(4, 2, replace=False)
        p = 1.0 / (1.0 + np.exp(-(strength[a] - strength[b])))
        u = rng.random()
        decisive = "model_a" if rng.random() < p else "model_b"
        winner = "tie" if u < 0.08 else "tie (bothbad)" if u < 0.1 else decisive
        tokens = rng.integers(50, 500, 2)
        records.append(
            {
                "question_id": f"q{i}",
                "model_a": MODELS[a],
                "model_b": MODELS[b],
                "winner": winner,
                "judge": f"u{i % 97}",
                "tstamp": 1_700_000_000 + i,
                "anony": True,
                "language": "English",
                "category": ["coding"] if i % 2 else [],
                "conv_metadata": {
                    "sum_user_tokens": 10,
                    "sum_assistant_a_tokens": int(tokens[0]),
                    "sum_assistant_b_tokens": int(tokens[1]),
                    "header_count_a": {"h1": 0, "h2": int(i % 3 == 0), "h3": 0, "h4": 0, "h5": 0, "h6": 0},
                    "header_count_b": {"h1": 0, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
                    "list_count_a": {"ordered": 0, "unordered": int(i % 5 == 0)},
                    "list_count_b": {"ordered": 1, "unordered": 0},
                    "bold_count_a": {"**": 0, "__": 0},
                    "bold_count_b": {"**": int(i % 7 == 0), "__": 0},
                },
            }
        )
    records += extra or []
    path = tmp_path / ("dump.json" if array else "dump.jsonl")
    if array:
        path.write_text(json.dumps(records))
    else:
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def _run(*args: str) -> str:
    out = StringIO()
    call_command("rank", *args, stdout=out)
    return out.getvalue()


def test_json_output_lists_every_model_with_rating_interval_rank_and_counts(tmp_path: Path) -> None:
    payload = json.loads(_run(str(_dump(tmp_path)), "--format", "json"))
    assert set(payload) >= {"models", "style_coefficients"}
    rows = payload["models"]
    assert [r["model"] for r in rows] == MODELS  # strongest first
    for row in rows:
        assert set(row) == {
            "model", "rating", "lower", "upper", "rank_ub", "battles", "win_rate", "provisional"
        }  # fmt: skip
        assert row["lower"] < row["rating"] < row["upper"]
        assert row["provisional"] is False
    assert sum(r["battles"] for r in rows) == 2 * 3000
    assert rows[0]["rank_ub"] == 1
    assert payload["style_coefficients"] == {}


def test_json_array_dumps_give_the_same_board_as_json_lines(tmp_path: Path) -> None:
    lines = json.loads(_run(str(_dump(tmp_path)), "--format", "json"))
    array = json.loads(_run(str(_dump(tmp_path, array=True)), "--format", "json"))
    assert lines["models"] == array["models"]


def test_table_output_shows_models_and_marks_provisional_ones(tmp_path: Path) -> None:
    newcomer = {"model_a": "newcomer", "model_b": "gpt-x", "winner": "model_a"}
    text = _run(str(_dump(tmp_path, extra=[newcomer] * 3)))
    assert "rank" in text.splitlines()[0] and "model" in text.splitlines()[0]
    line = next(row for row in text.splitlines() if "newcomer" in row)
    assert line.rstrip().endswith("*")
    assert "provisional" in text


def test_style_control_reports_its_coefficients(tmp_path: Path) -> None:
    payload = json.loads(_run(str(_dump(tmp_path)), "--format", "json", "--style-control"))
    assert set(payload["style_coefficients"]) == {"length", "headers", "lists", "bold"}
    assert len(payload["models"]) == 4


def test_anchor_category_bootstrap_and_min_battles_options(tmp_path: Path) -> None:
    path = str(_dump(tmp_path))
    options = ["--anchor", "llama-z=1114", "--category", "coding", "--ci", "bootstrap", "--bootstrap", "30"]
    payload = json.loads(_run(path, "--format", "json", *options, "--min-battles", "2000"))
    rows = {r["model"]: r for r in payload["models"]}
    assert rows["llama-z"]["rating"] == pytest.approx(1114.0)
    assert sum(r["battles"] for r in rows.values()) == 2 * 1500  # only the odd battles are "coding"
    assert all(r["provisional"] for r in rows.values())  # nobody has 2000 battles in this category
    assert payload["ci"] == "bootstrap"


def test_a_malformed_line_is_a_clear_error_naming_the_line(tmp_path: Path) -> None:
    path = _dump(tmp_path, n=5)
    path.write_text(path.read_text() + '{"model_a": "gpt-x", "model_b": "claude-y"}\n')
    with pytest.raises(CommandError, match=r"line 6: missing required field 'winner'"):
        _run(str(path))


def test_broken_json_is_a_clear_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"model_a": "a", "model_b": "b", "winner": "tie"}\n{"model_a": \n')
    with pytest.raises(CommandError, match=r"line 2: invalid JSON"):
        _run(str(path))


def test_missing_file_and_bad_anchor_are_command_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        _run(str(tmp_path / "nope.jsonl"))
    with pytest.raises(CommandError, match="MODEL=RATING"):
        _run(str(_dump(tmp_path, n=50)), "--anchor", "gpt-x")
    with pytest.raises(CommandError, match="no battles"):
        _run(str(_dump(tmp_path, n=50)), "--category", "poetry")


def test_style_control_without_any_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bare.jsonl"
    path.write_text('{"model_a": "a", "model_b": "b", "winner": "model_a"}\n' * 3)
    with pytest.raises(CommandError, match="needs conv_metadata"):
        _run(str(path), "--style-control")
