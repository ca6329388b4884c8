"""Fraud scans over public battle dumps (pure Python/numpy, no Django).

The leaderboard reader (`dump.read_battles`) keeps what ratings need; a fraud scan also wants the
seconds-to-vote field, optional network / ip / device hashes and the prompt, so this module reads the
records itself, with the same error type and winner vocabulary (`dump.DumpError`, `dump.WINNER_OUTCOMES`).
A `dump.Battles` read for ranking can be scanned too (`votes_from_battles`), which is what
`rank --exclude-flagged` needs:

    battles = read_battles(path)
    clean = drop_battles(battles, question_ids=excluded_question_ids(battles))
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .dump import WINNER_OUTCOMES, Battles, DumpError
from .fraud import DEFAULT_CONFIG, FraudConfig, FraudReport, fraud_scan
from .fraud_votes import UNKNOWN, VoteArrays

__all__ = [
    "SECONDS_FIELDS",
    "DumpVotes",
    "excluded_question_ids",
    "fraud_scan_dump",
    "read_battle_records",
    "scan_dump",
    "votes_from_battles",
    "votes_from_records",
]

#: Accepted names of the seconds-from-both-outputs-done-to-the-vote field, first match wins.
SECONDS_FIELDS = ("seconds_to_vote", "vote_latency", "time_to_vote")


@dataclass(frozen=True)
class DumpVotes:
    """Votes of a dump plus what is needed to print results in the dump's own terms."""

    votes: VoteArrays
    question_ids: tuple[str | None, ...]  # per vote
    judges: tuple[str, ...]  # judges[voter id]
    model_names: tuple[str, ...]


def read_battle_records(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """("line N" or "element N", record) pairs from a JSON array or JSON-lines file."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.lstrip()[:1] == b"[":
        try:
            records = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DumpError(f"line {exc.lineno}", f"invalid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(records, list):
            raise DumpError("line 1", "expected a JSON array of battle records")
        return [_record(f"element {n}", r) for n, r in enumerate(records, start=1)]
    out = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            out.append(_record(f"line {number}", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            raise DumpError(f"line {number}", f"invalid JSON ({exc.msg}, column {exc.colno})") from None
    return out


def _record(location: str, record: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(record, dict):
        raise DumpError(location, f"expected a JSON object, got {type(record).__name__}")
    return location, record


class _Ids:
    """Dense integer ids for strings, in first-seen order; None or "" is unknown (-1)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, value: Any) -> int:
        if value is None or value == "":
            return UNKNOWN
        return self.index.setdefault(str(value), len(self.index))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


def votes_from_records(records: Iterable[tuple[str, Mapping[str, Any]]]) -> DumpVotes:
    """Public-format battles to VoteArrays.

    Required: model_a, model_b, winner, judge. Optional: question_id, tstamp, a seconds-to-vote field
    (SECONDS_FIELDS), network / ip / device (already-hashed ids), and the prompt (`prompt`, else the first
    user turn of `conversation_a`), which is hashed here so repeated prompts can be counted.
    """
    models, judges, networks, ips, devices, prompts = _Ids(), _Ids(), _Ids(), _Ids(), _Ids(), _Ids()
    cols: dict[str, list[float]] = {
        k: [] for k in ("voter", "a", "b", "y", "net", "ip", "dev", "sec", "ts", "prompt")
    }
    question_ids: list[str | None] = []
    for location, record in records:
        a, b, outcome = _battle(location, record)
        cols["a"].append(models(a))
        cols["b"].append(models(b))
        cols["y"].append(outcome)
        cols["voter"].append(judges(_required(location, record, "judge")))
        cols["net"].append(networks(record.get("network")))
        cols["ip"].append(ips(record.get("ip")))
        cols["dev"].append(devices(record.get("device")))
        cols["prompt"].append(prompts(_prompt_hash(record)))
        cols["sec"].append(_number(location, record, SECONDS_FIELDS))
        cols["ts"].append(_number(location, record, ("tstamp",)))
        qid = record.get("question_id")
        question_ids.append(None if qid is None else str(qid))
    votes = VoteArrays(
        voter=np.asarray(cols["voter"], dtype=np.int64),
        model_a=np.asarray(cols["a"], dtype=np.int64),
        model_b=np.asarray(cols["b"], dtype=np.int64),
        outcome=np.asarray(cols["y"], dtype=np.float64),
        n_models=max(len(models.names), 1),
        network=np.asarray(cols["net"], dtype=np.int64),
        ip=np.asarray(cols["ip"], dtype=np.int64),
        device=np.asarray(cols["dev"], dtype=np.int64),
        seconds_to_vote=np.asarray(cols["sec"], dtype=np.float64),
        timestamp=np.asarray(cols["ts"], dtype=np.float64),
        prompt=np.asarray(cols["prompt"], dtype=np.int64),
    )
    return DumpVotes(votes, tuple(question_ids), judges.names, models.names)


def votes_from_battles(battles: Battles) -> DumpVotes:
    """A `dump.Battles` (as read for ranking) to VoteArrays: judges, models, outcomes and timestamps only.

    A battle without a judge cannot be attributed to anyone, so it becomes its own one-vote voter, which no
    per-voter test can flag.
    """
    judges = _Ids()
    voter = np.array([judges(j) for j in battles.judge], dtype=np.int64)
    anonymous = voter < 0
    voter[anonymous] = len(judges.names) + np.arange(int(anonymous.sum()))
    names = judges.names + tuple(f"<no judge {i}>" for i in range(int(anonymous.sum())))
    tstamp = battles.tstamp if battles.tstamp is not None else np.full(len(battles), np.nan)
    votes = VoteArrays(
        voter=voter,
        model_a=battles.model_a.astype(np.int64),
        model_b=battles.model_b.astype(np.int64),
        outcome=battles.outcome,
        n_models=max(len(battles.models), 1),
        timestamp=tstamp,
    )
    qids = tuple(None if q is None else str(q) for q in battles.question_id)
    return DumpVotes(votes, qids, names, tuple(battles.models))


def _required(location: str, record: Mapping[str, Any], key: str) -> Any:
    value = record.get(key)
    if value is None or value == "":
        raise DumpError(location, f"missing required field {key!r}")
    return value


def _battle(location: str, record: Mapping[str, Any]) -> tuple[str, str, float]:
    a, b = _required(location, record, "model_a"), _required(location, record, "model_b")
    if not isinstance(a, str) or not isinstance(b, str):
        raise DumpError(location, "fields 'model_a' and 'model_b' must be strings")
    if a == b:
        raise DumpError(location, f"model_a and model_b are the same model ({a!r})")
    winner = _required(location, record, "winner")
    if not isinstance(winner, str) or winner not in WINNER_OUTCOMES:
        raise DumpError(
            location, f"unknown winner {winner!r} (expected one of {', '.join(sorted(WINNER_OUTCOMES))})"
        )
    return a, b, WINNER_OUTCOMES[winner]


def _number(location: str, record: Mapping[str, Any], keys: tuple[str, ...]) -> float:
    for key in keys:
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DumpError(location, f"{key} must be a number, got {value!r}")
        return float(value)
    return float("nan")


def _prompt_hash(record: Mapping[str, Any]) -> str | None:
    """A short hash of the whitespace- and case-normalised prompt, or None when there is no prompt."""
    text = record.get("prompt")
    if text is None:
        conversation = record.get("conversation_a")
        if isinstance(conversation, list):
            turns = (
                m.get("content") for m in conversation if isinstance(m, Mapping) and m.get("role") == "user"
            )
            text = next(turns, None)
    if not isinstance(text, str) or not text.strip():
        return None
    return hashlib.blake2b(" ".join(text.split()).lower().encode(), digest_size=8).hexdigest()


def scan_dump(dump: DumpVotes, config: FraudConfig = DEFAULT_CONFIG) -> FraudReport:
    """`fraud.fraud_scan` on a dump, with the dump's model names in the reasons."""
    return fraud_scan(dump.votes, config=config, model_names=dump.model_names)


def fraud_scan_dump(dump: DumpVotes, config: FraudConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """The `fraud_scan` command's JSON: flagged judges (riskiest first) with reasons and vote counts, and the
    question ids of every vote left out (flagged judges' votes and repeated-prompt duplicates)."""
    report = scan_dump(dump, config)
    flagged = [
        {"judge": dump.judges[flag.voter], "reasons": list(flag.reasons), "votes": flag.votes}
        for flag in report.flagged_voters()
    ]
    return {"flagged_judges": flagged, "excluded_question_ids": _excluded(dump, report)}


def _excluded(dump: DumpVotes, report: FraudReport) -> list[str]:
    return sorted(
        {q for q in (dump.question_ids[i] for i in np.flatnonzero(report.vote_excluded)) if q is not None}
    )


def excluded_question_ids(source: DumpVotes | Battles, config: FraudConfig = DEFAULT_CONFIG) -> set[str]:
    """Question ids a fraud scan leaves out, for `rank --exclude-flagged` (pair with `dump.drop_battles`)."""
    dump = votes_from_battles(source) if isinstance(source, Battles) else source
    return set(_excluded(dump, scan_dump(dump, config)))
