"""`manage.py fraud_scan FILE` prints flagged judges and excluded question ids, and names bad lines."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import orjson
import pytest
from django.core.management import CommandError, call_command


def honest_dump(rng: np.random.Generator, battles: int = 3000, judges: int = 500) -> list[dict[str, object]]:
    names = [f"model-{i}" for i in range(6)]
    records = []
    for n in range(battles):
        a, b = rng.choice(6, 2, replace=False)
        winner = "model_a" if rng.random() < 1 / (1 + 10 ** ((b - a) * 60 / 400)) else "model_b"
        records.append(
            {
                "question_id": f"h{n}",
                "model_a": names[a],
                "model_b": names[b],
                "winner": winner,
                "judge": f"judge-{n % judges}",
                "tstamp": 1_700_000_000 + 40.0 * n,
                "seconds_to_vote": float(rng.lognormal(np.log(12), 0.6)),
            }
        )
    return records


def run(path: Path) -> dict[str, object]:
    out = StringIO()
    call_command("fraud_scan", str(path), stdout=out)
    return orjson.loads(out.getvalue())


def test_command_prints_flagged_judges_and_their_question_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = honest_dump(rng)
    for n in range(30):
        records.append(
            {
                "question_id": f"bot{n}",
                "model_a": "model-2",
                "model_b": "model-4",
                "winner": "model_b",
                "judge": "speedy",
                "tstamp": 1_700_000_000 + 15.0 * n,
                "vote_latency": 0.6,
            }
        )
    path = tmp_path / "battles.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    result = run(path)
    assert [j["judge"] for j in result["flagged_judges"]] == ["speedy"]
    assert result["flagged_judges"][0]["votes"] == 30
    assert "bot_speed" in result["flagged_judges"][0]["reasons"]
    assert result["excluded_question_ids"] == sorted(f"bot{n}" for n in range(30))


def test_command_reads_a_json_array_without_optional_fields(tmp_path: Path) -> None:
    records = [
        {k: v for k, v in r.items() if k in ("model_a", "model_b", "winner", "judge")}
        for r in honest_dump(np.random.default_rng(1))
    ]
    path = tmp_path / "battles.json"
    path.write_bytes(orjson.dumps(records))
    assert run(path) == {"flagged_judges": [], "excluded_question_ids": []}


def test_malformed_line_is_a_command_error_naming_the_line(tmp_path: Path) -> None:
    lines = [orjson.dumps(r).decode() for r in honest_dump(np.random.default_rng(2), battles=5)]
    lines[3] = '{"model_a": "model-1", "model_b": "model-2", "winner": "model_c", "judge": "j"}'
    path = tmp_path / "battles.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(CommandError, match="line 4: unknown winner 'model_c'"):
        call_command("fraud_scan", str(path))


def test_truncated_json_array_is_a_command_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "battles.json"
    path.write_text('[\n{"model_a": "x", "model_b": "y", "winner": "tie", "judge": "j"},\n{"model_a": "x",\n')
    with pytest.raises(CommandError, match="line 4"):
        call_command("fraud_scan", str(path))


def test_missing_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        call_command("fraud_scan", str(tmp_path / "nope.json"))


def test_rank_with_exclude_flagged_leaves_out_the_flagged_judges_battles(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = honest_dump(rng)
    # A booster that always votes for the weakest model (model-0), fast: it lifts it unless excluded.
    for n in range(300):
        records.append(
            {
                "question_id": f"boost{n}",
                "model_a": "model-0",
                "model_b": f"model-{1 + n % 5}",
                "winner": "model_a",
                "judge": "booster",
                "tstamp": 1_700_200_000 + 5.0 * n,
                "seconds_to_vote": 0.8,
            }
        )
    path = tmp_path / "battles.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records))

    def board(*flags: str) -> dict[str, dict[str, object]]:
        out = StringIO()
        call_command("rank", str(path), "--format", "json", "--min-battles", "5", *flags, stdout=out)
        return {m["model"]: m for m in orjson.loads(out.getvalue())["models"]}

    rigged, clean = board(), board("--exclude-flagged")
    assert sum(m["battles"] for m in clean.values()) == 2 * 3000
    assert clean["model-0"]["rating"] < rigged["model-0"]["rating"] - 50
    assert clean["model-0"]["rank_ub"] >= rigged["model-0"]["rank_ub"]
