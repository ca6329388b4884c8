"""Reader for public battle dumps (Chatbot Arena's export format), as JSON array or JSON lines.

Each record needs `model_a`, `model_b` and `winner` ("model_a", "model_b", "tie", "tie (bothbad)"); `tstamp`,
`question_id`, `judge`, `category` / `category_tag` and `conv_metadata` are optional. orjson parses; a
malformed file raises `DumpError` naming the 1-based line (JSON lines) or element (JSON array). Output is the
engine's array form (`Battles`), so a million-battle dump goes straight into `leaderboard`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from .style import STYLE_FEATURES, style_contrasts, style_counts_from_metadata

__all__ = [
    "WINNER_OUTCOMES",
    "Battles",
    "DumpError",
    "drop_battles",
    "in_category",
    "parse_battles",
    "read_battles",
]

#: Exported `winner` values and the outcome for model A (a tie and both-bad are half a win each).
WINNER_OUTCOMES: dict[str, float] = {
    "model_a": 1.0,
    "model_b": 0.0,
    "tie": 0.5,
    "tie (bothbad)": 0.5,
    "tie(bothbad)": 0.5,
    "both_bad": 0.5,
    "bothbad": 0.5,
}

_REQUIRED = ("model_a", "model_b", "winner")
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")


class DumpError(ValueError):
    """A malformed battle dump. `location` is e.g. "line 17" (JSON lines) or "element 17" (JSON array)."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message

    def __reduce__(self) -> tuple[type[DumpError], tuple[str, str]]:
        # Survives pickling (a Celery task's error, a multiprocessing worker) with both fields.
        return (DumpError, (self.location, self.message))


@dataclass(frozen=True)
class Battles:
    """Battles as arrays, ready for the engine.

    Attributes:
        models: model names; `model_a` / `model_b` index into it (order of first appearance).
        model_a, model_b: integer model indices.
        outcome: 1 = model A won, 0 = model B won, 0.5 = tie or both-bad.
        tstamp: unix seconds (NaN where missing), or None when no record had one.
        style: raw style contrasts (battles x 4, `style.STYLE_FEATURES`; NaN rows lack metadata), or None when
            not requested.
        question_id, judge: per-battle identifiers (None where missing), used to drop flagged votes.
    """

    models: list[str]
    model_a: NDArray[np.intp]
    model_b: NDArray[np.intp]
    outcome: NDArray[np.float64]
    tstamp: NDArray[np.float64] | None
    style: NDArray[np.float64] | None
    question_id: NDArray[np.object_]
    judge: NDArray[np.object_]

    def __len__(self) -> int:
        return int(self.outcome.shape[0])

    def select(self, mask: NDArray[np.bool_]) -> Battles:
        """The battles where `mask` is true (model list unchanged)."""
        return replace(
            self,
            model_a=self.model_a[mask],
            model_b=self.model_b[mask],
            outcome=self.outcome[mask],
            tstamp=None if self.tstamp is None else self.tstamp[mask],
            style=None if self.style is None else self.style[mask],
            question_id=self.question_id[mask],
            judge=self.judge[mask],
        )


def drop_battles(
    battles: Battles, *, question_ids: Collection[str] = (), judges: Collection[str] = ()
) -> Battles:
    """Leave out flagged votes: every battle whose question_id or judge is in the given sets.

    This is where fraud detection plugs in (a set of flagged voters or conversations in, a cleaner set of
    battles out); the ratings code never needs to know why a vote was dropped.
    """
    qs = set(question_ids)
    js = set(judges)
    if not qs and not js:
        return battles
    keep = np.fromiter(
        (q not in qs and j not in js for q, j in zip(battles.question_id, battles.judge, strict=True)),
        dtype=bool,
        count=len(battles),
    )
    return battles.select(keep)


def in_category(record: Mapping[str, Any], name: str) -> bool:
    """True if the record is labelled with category `name`.

    Accepted shapes: `category` (or `category_tag`) equal to the name, a list containing it, or a dict whose
    entry for it is truthy; one level of nesting is searched too, so LMArena's
    {"math_v0.1": {"math": true}} matches "math" as well as "math_v0.1".
    """
    for key in ("category", "category_tag"):
        label = record.get(key)
        if label is None:
            continue
        if isinstance(label, str):
            if label == name:
                return True
        elif isinstance(label, list):
            if name in label:
                return True
        elif isinstance(label, Mapping):
            if label.get(name):
                return True
            if any(isinstance(v, Mapping) and v.get(name) for v in label.values()):
                return True
    return False


def read_battles(
    path: str | os.PathLike[str], *, category: str | None = None, style: bool = False
) -> Battles:
    """Read a dump file (JSON array or JSON lines, by its first non-blank byte); see `parse_battles`."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_battles(data, category=category, style=style)


def parse_battles(data: bytes, *, category: str | None = None, style: bool = False) -> Battles:
    """Parse dump bytes into `Battles`.

    Building a Python object for every JSON value of a record (conversations, metadata, category tags) is the
    cost of reading a dump; the per-battle loop that keeps our few fields adds little to orjson's parse.

    Args:
        data: the file content.
        category: keep only battles in this category (see `in_category`).
        style: compute style contrasts from `conv_metadata` (NaN rows where it is absent).
    """
    start = _LEADING_SPACE.match(data).end()  # not data.lstrip(): that would copy the whole dump
    if data[start : start + 1] == b"[":
        try:
            records = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DumpError(f"line {exc.lineno}", f"invalid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(records, list):
            raise DumpError("line 1", "expected a JSON array of battle records")
        return _battles(_collect(enumerate(records, start=1), "element", category, style), style)
    return _battles(_collect(_json_lines(data), "line", category, style), style)


def _json_lines(data: bytes) -> Iterable[tuple[int, Any]]:
    """(1-based line number, parsed record) for each non-blank line."""
    loads = orjson.loads
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line or line.isspace():
            continue
        try:
            yield number, loads(line)
        except orjson.JSONDecodeError as exc:
            raise DumpError(f"line {number}", f"invalid JSON ({exc.msg}, column {exc.colno})") from None


def _describe_problem(record: Any) -> str:
    """Why a record could not be read (only called on the slow error path)."""
    if not isinstance(record, Mapping):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in _REQUIRED:
        if key not in record:
            return f"missing required field {key!r}"
    for key in ("model_a", "model_b"):
        if not isinstance(record[key], str) or not record[key]:
            return f"field {key!r} must be a non-empty string"
    if record["model_a"] == record["model_b"]:
        return f"model_a and model_b are the same model ({record['model_a']!r})"
    winner = record["winner"]
    if not isinstance(winner, str) or winner not in WINNER_OUTCOMES:
        return f"unknown winner {winner!r} (expected one of {', '.join(sorted(WINNER_OUTCOMES))})"
    return "malformed record"


@dataclass
class _Chunk:
    """The fields pulled out of a dump's records, before conversion to `Battles`."""

    models: list[str]
    model_a: NDArray[np.intp]
    model_b: NDArray[np.intp]
    outcome: NDArray[np.float64]
    tstamp: NDArray[np.float64]
    style_counts: NDArray[np.float64]
    question_id: list[Any]
    judge: list[Any]


def _collect(records: Iterable[tuple[int, Any]], unit: str, category: str | None, style: bool) -> _Chunk:
    """Pull the fields out of parsed records: the per-battle hot loop, so it keeps to local names."""
    index: dict[str, int] = {}
    model_a: list[int] = []
    model_b: list[int] = []
    outcome: list[float] = []
    tstamp: list[float] = []
    question_id: list[Any] = []
    judge: list[Any] = []
    counts: list[float] = []
    nan = float("nan")
    no_counts = (nan,) * (2 * len(STYLE_FEATURES))
    outcomes = WINNER_OUTCOMES
    for number, rec in records:
        try:
            ma = rec["model_a"]
            mb = rec["model_b"]
            y = outcomes[rec["winner"]]
            ia = index.get(ma)
            ib = index.get(mb)
        except (KeyError, TypeError, AttributeError):
            raise DumpError(f"{unit} {number}", _describe_problem(rec)) from None
        if (ia is None or ib is None or ia == ib) and (
            ma == mb or not isinstance(ma, str) or not isinstance(mb, str) or not ma or not mb
        ):
            raise DumpError(f"{unit} {number}", _describe_problem(rec))
        if category is not None and not in_category(rec, category):
            continue
        if ia is None:
            ia = index.setdefault(ma, len(index))
        if ib is None:
            ib = index.setdefault(mb, len(index))
        ts = rec.get("tstamp")
        if ts is None:
            tstamp.append(nan)
        elif isinstance(ts, int | float) and not isinstance(ts, bool):
            tstamp.append(ts)
        else:
            raise DumpError(f"{unit} {number}", f"tstamp must be a number, got {ts!r}")
        if style:
            meta = rec.get("conv_metadata")
            if meta is None:
                counts.extend(no_counts)
            else:
                try:
                    counts.extend(style_counts_from_metadata(meta))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise DumpError(f"{unit} {number}", f"malformed conv_metadata ({exc!r})") from None
        model_a.append(ia)
        model_b.append(ib)
        outcome.append(y)
        question_id.append(rec.get("question_id"))
        judge.append(rec.get("judge"))
    models = [""] * len(index)
    for name, i in index.items():
        models[i] = name
    return _Chunk(
        models=models,
        model_a=np.asarray(model_a, dtype=np.intp),
        model_b=np.asarray(model_b, dtype=np.intp),
        outcome=np.asarray(outcome, dtype=np.float64),
        tstamp=np.asarray(tstamp, dtype=np.float64),
        style_counts=np.asarray(counts, dtype=np.float64),
        question_id=question_id,
        judge=judge,
    )


def _battles(chunk: _Chunk, style: bool) -> Battles:
    """Final arrays: the identifiers as object arrays, style counts turned into contrasts."""
    n = chunk.outcome.size
    qid = np.empty(n, dtype=object)
    qid[:] = chunk.question_id
    jdg = np.empty(n, dtype=object)
    jdg[:] = chunk.judge
    tstamp = chunk.tstamp
    return Battles(
        models=chunk.models,
        model_a=chunk.model_a,
        model_b=chunk.model_b,
        outcome=chunk.outcome,
        tstamp=tstamp if n and not np.all(np.isnan(tstamp)) else None,
        style=style_contrasts(chunk.style_counts) if style else None,
        question_id=qid,
        judge=jdg,
    )
