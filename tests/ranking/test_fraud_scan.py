"""The combined scan: flags, reasons, risk scores, excluded votes, vote-time checks and dump reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from ranking.engine.dump import DumpError, drop_battles, read_battles
from ranking.engine.fraud import FraudConfig, fraud_scan, vote_time_risk
from ranking.engine.fraud_dump import (
    excluded_question_ids,
    fraud_scan_dump,
    read_battle_records,
    votes_from_battles,
    votes_from_records,
)

from .fraud_world import N_MODELS, Rows, world


@pytest.fixture(scope="module")
def mixed() -> tuple[Rows, dict[str, list[int]]]:
    rows = world(seed=21, honest_voters=400, votes_each=50)
    bad = {
        "left": [rows.add(60, "left") for _ in range(3)],
        "random": [rows.add(150, "random") for _ in range(3)],
        "booster": [rows.add(150, "booster", target=0) for _ in range(3)],
        "bot": [rows.add(40, seconds_to_vote=1.0) for _ in range(3)],
        "ring": [rows.add(20, "booster", target=2, network=77, ip=7700 + k) for k in range(15)],
        "burst": [rows.add(150, timestamp=1e6 + np.arange(150) * 20.0)],
    }
    return rows, bad


@pytest.fixture(scope="module")
def report(mixed: tuple[Rows, dict[str, list[int]]]):  # type: ignore[no-untyped-def]
    rows, _ = mixed
    return fraud_scan(rows.votes(), model_names=[f"m{i}" for i in range(N_MODELS)])


def reasons_of(report, voter: int) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return report.voter_reasons[int(np.searchsorted(report.voter_ids, voter))]


def test_scan_flags_every_kind_of_bad_voter_with_its_reason(mixed, report) -> None:  # type: ignore[no-untyped-def]
    _, bad = mixed
    expected = {
        "left": "position_bias",
        "random": "crowd_likelihood:low",
        "booster": "target_concentration:m0",
        "bot": "bot_speed",
        "ring": "ring:77",
        "burst": "rate",
    }
    for kind, voters in bad.items():
        for voter in voters:
            assert expected[kind] in reasons_of(report, voter), (kind, reasons_of(report, voter))


def test_scan_leaves_honest_voters_alone(mixed, report) -> None:  # type: ignore[no-untyped-def]
    _, bad = mixed
    bad_ids = {v for voters in bad.values() for v in voters}
    honest_flagged = [v for v in report.flagged_ids.tolist() if v not in bad_ids]
    assert len(honest_flagged) <= 4  # the false-positive budget is 1% of honest voters


def test_flagged_votes_are_excluded_and_riskier(mixed, report) -> None:  # type: ignore[no-untyped-def]
    rows, bad = mixed
    votes = rows.votes()
    bad_votes = np.isin(votes.voter, [v for voters in bad.values() for v in voters])
    assert report.vote_excluded[bad_votes].all()
    assert report.vote_risk[bad_votes].min() >= 0.5
    assert np.median(report.vote_risk[~bad_votes]) < 0.05
    flags = report.flagged_voters()
    assert flags[0].risk >= flags[-1].risk
    assert all(0.0 <= f.risk <= 1.0 for f in flags)


def test_each_excluded_vote_has_a_reason(mixed, report) -> None:  # type: ignore[no-untyped-def]
    rows, bad = mixed
    votes = rows.votes()
    bot_vote = int(np.flatnonzero(votes.voter == bad["bot"][0])[0])
    assert report.vote_reasons(bot_vote) == ("bot_speed", "fast_vote")
    assert all(report.vote_reasons(i) for i in np.flatnonzero(report.vote_excluded))


def test_repeated_prompt_duplicates_are_excluded_without_flagging_the_voter() -> None:
    rows = world(seed=6, honest_voters=100, votes_each=20)
    asker = rows.add(10, prompt=np.r_[np.full(5, 42), np.arange(5) + 8_000_000])
    report = fraud_scan(rows.votes())
    votes = rows.votes()
    mine = np.flatnonzero(votes.voter == asker)
    assert asker not in report.flagged_ids
    assert report.vote_excluded[mine].tolist() == [False, False, False, True, True] + [False] * 5
    assert report.vote_reasons(int(mine[3])) == ("repeated_prompts",)


def test_refitting_without_suspects_sharpens_the_crowd_model() -> None:
    # Boosters big enough to drag model 0's crowd rating up; the second round judges them against a clean fit.
    rows = world(seed=4, honest_voters=200, votes_each=40)
    boosters = [rows.add(400, "booster", target=0) for _ in range(10)]
    votes = rows.votes()
    one_round = fraud_scan(votes, config=FraudConfig(rounds=1))
    iterated = fraud_scan(votes)
    assert iterated.rounds >= 2
    assert iterated.theta[0] < one_round.theta[0]
    assert set(boosters) <= set(iterated.flagged_ids.tolist())


def test_given_ratings_are_used_as_is() -> None:
    rows = world(seed=5, honest_voters=50, votes_each=30)
    votes = rows.votes()
    theta = np.linspace(-1, 1, N_MODELS)
    report = fraud_scan(votes, theta=theta)
    assert report.rounds == 1 and report.theta is theta


def test_vote_time_risk_counts_a_plain_vote() -> None:
    risk = vote_time_risk(
        seconds_to_vote=14.0,
        voter_votes_in_window=3,
        ip_votes_in_window=3,
        voter_left_picks=5,
        voter_right_picks=4,
    )
    assert risk.counted and risk.risk == 0.0 and risk.reasons == ()


def test_vote_time_risk_marks_a_fast_click_but_counts_it() -> None:
    risk = vote_time_risk(
        seconds_to_vote=0.7,
        voter_votes_in_window=3,
        ip_votes_in_window=3,
        voter_left_picks=5,
        voter_right_picks=4,
    )
    assert risk.counted and risk.reasons == ("fast_vote",) and 0 < risk.risk < 0.5


def test_vote_time_risk_holds_back_rate_and_position_abuse() -> None:
    risk = vote_time_risk(
        seconds_to_vote=None,
        voter_votes_in_window=101,
        ip_votes_in_window=250,
        voter_left_picks=30,
        voter_right_picks=0,
    )
    assert not risk.counted
    assert set(risk.reasons) == {"rate", "rate:ip", "position_bias"}
    assert risk.risk >= 0.5


def battle(qid: str, a: str, b: str, winner: str, judge: str, **extra: object) -> dict[str, object]:
    return {"question_id": qid, "model_a": a, "model_b": b, "winner": winner, "judge": judge, **extra}


def test_dump_records_become_vote_arrays(tmp_path: Path) -> None:
    path = tmp_path / "battles.json"
    records = [
        battle("q1", "x", "y", "model_a", "alice", tstamp=10.0, vote_latency=3.5),
        battle(
            "q2",
            "y",
            "z",
            "tie (bothbad)",
            "bob",
            tstamp=11.0,
            conversation_a=[{"role": "user", "content": "Hi"}],
        ),
        battle("q3", "z", "x", "model_b", "alice", seconds_to_vote=1.5),
    ]
    path.write_bytes(orjson.dumps(records))
    dump = votes_from_records(read_battle_records(path))
    assert dump.model_names == ("x", "y", "z")
    assert dump.votes.outcome.tolist() == [1.0, 0.5, 0.0]
    assert [dump.judges[v] for v in dump.votes.voter] == ["alice", "bob", "alice"]
    assert dump.votes.seconds_to_vote.tolist() == [3.5, pytest.approx(np.nan, nan_ok=True), 1.5]
    assert dump.votes.prompt.tolist() == [-1, 0, -1]
    assert dump.question_ids == ("q1", "q2", "q3")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"question_id": "q", "model_a": "x", "model_b": "y", "winner": "model_c", "judge": "j"}',
            "unknown winner",
        ),
        ('{"question_id": "q", "model_a": "x", "model_b": "y", "winner": "tie"}', "judge"),
        ('{"question_id": "q", "model_a": "x", "model_b": "x", "winner": "tie", "judge": "j"}', "same model"),
        (
            '{"model_a": "x", "model_b": "y", "winner": "tie", "judge": "j", "tstamp": "noon"}',
            "tstamp",
        ),
        ('{"question_id": "q", "model_a": "x",', "invalid JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_dump_lines_are_reported_with_their_number(tmp_path: Path, line: str, message: str) -> None:
    good = orjson.dumps(battle("q0", "x", "y", "model_a", "j")).decode()
    path = tmp_path / "battles.jsonl"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(DumpError, match=message) as info:
        votes_from_records(read_battle_records(path))
    assert info.value.location == "line 3"


def test_dump_scan_reports_judges_and_excluded_question_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"model-{i}" for i in range(6)]
    records = []
    for n in range(3000):
        a, b = rng.choice(6, 2, replace=False)
        p_a = 1 / (1 + 10 ** ((b - a) * 60 / 400))
        winner = "model_a" if rng.random() < p_a else "model_b"
        records.append(battle(f"h{n}", names[a], names[b], winner, f"judge-{n % 500}"))
    for n in range(40):
        a, b = rng.choice(6, 2, replace=False)
        records.append(battle(f"left{n}", names[a], names[b], "model_a", "lefty"))
    path = tmp_path / "dump.json"
    path.write_bytes(orjson.dumps(records))
    dump = votes_from_records(read_battle_records(path))
    out = fraud_scan_dump(dump)
    assert out["flagged_judges"] == [{"judge": "lefty", "reasons": ["position_bias"], "votes": 40}]
    assert out["excluded_question_ids"] == sorted(f"left{n}" for n in range(40))
    assert excluded_question_ids(dump) == {f"left{n}" for n in range(40)}


def test_battles_read_for_ranking_can_be_scanned_and_cleaned(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = []
    for n in range(2000):
        a, b = rng.choice(5, 2, replace=False)
        winner = "model_a" if rng.random() < 1 / (1 + 10 ** ((b - a) * 80 / 400)) else "model_b"
        records.append(battle(f"h{n}", f"m{a}", f"m{b}", winner, f"judge-{n % 400}"))
    records += [battle(f"left{n}", "m0", "m4", "model_a", "lefty") for n in range(30)]
    records.append({"question_id": "anon", "model_a": "m1", "model_b": "m2", "winner": "model_a"})
    path = tmp_path / "dump.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    battles = read_battles(path)
    assert votes_from_battles(battles).votes.n_voters == 400 + 1 + 1
    excluded = excluded_question_ids(battles)
    assert excluded == {f"left{n}" for n in range(30)}
    assert len(drop_battles(battles, question_ids=excluded)) == 2001
