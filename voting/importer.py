"""Import public battle dumps (a JSON array or JSON lines) into the database.

Each good record becomes a voted Battle (code = `question_id`), its Generations (from the conversations, when
the dump has them) and its Vote; counted votes are added to the pair tallies in the same transaction.
Idempotent: a `question_id` already in the database is skipped, so a dump can be imported again after a
fix. A bad record is reported with its line number and skipped; every good record is kept.

Decisions, so an imported row is never mistaken for a live one:

* Models named in the dump and unknown here are created **inactive, with weight 0 and backend kind
  "imported"** (not a runnable backend): they rank on the boards but are never sampled into a battle, and
  the admin refuses to enable one until an operator gives it a real backend.
* Votes are marked imported through their voter: one Voter per dump `judge`, whose session hash is
  "imported:<judge>" (no address or session hashes: the dump has none). The export gives such votes their
  original judge back and `imported: true`.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, Value, When
from django.utils import timezone

from arena.models import Battle, Generation, Modality, ModelEntry
from ranking.tallies import tally_record
from voting.categories import battle_categories
from voting.export import IMPORTED_PREFIX
from voting.models import Vote, Voter

IMPORTED_BACKEND = "imported"
BATCH = 1000
_CHOICES = {
    "model_a": Vote.Choice.A,
    "model_b": Vote.Choice.B,
    "tie": Vote.Choice.TIE,
    "tie (bothbad)": Vote.Choice.BOTH_BAD,
    "tie(bothbad)": Vote.Choice.BOTH_BAD,
    "both_bad": Vote.Choice.BOTH_BAD,
    "bothbad": Vote.Choice.BOTH_BAD,
}
_HAS_RISK = any(f.name == "risk_score" for f in Vote._meta.get_fields())


class RowError(ValueError):
    pass


@dataclass
class ImportReport:
    imported: int = 0
    skipped_existing: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (location, message)
    models_created: list[str] = field(default_factory=list)
    modalities: set[str] = field(default_factory=set)


# --- reading ---

# A JSON string, or one structural byte: enough to find the top-level elements of an array without parsing it.
_TOKEN = re.compile(rb'"(?:[^"\\\n]|\\.)*"|[\[\]{},\n]')


def _array_elements(data: bytes | mmap.mmap) -> Iterator[tuple[str, bytes]]:
    """Each top-level element's text and "line L (element N)", so one broken element spoils only itself."""
    depth, line, start, start_line, number = 0, 1, -1, 1, 0
    for token in _TOKEN.finditer(data):
        char = token.group()[:1]
        if char == b"\n":
            line += 1
        elif char in (b"[", b"{", b'"'):
            if depth == 1 and start < 0:
                start, start_line = token.start(), line
            depth += char != b'"'
        elif char in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                break
        elif char == b"," and depth == 1:
            number += 1
            yield (
                f"line {start_line if start >= 0 else line} (element {number})",
                bytes(data[start : token.start()]) if start >= 0 else b"",
            )
            start = -1
    if start >= 0:
        number += 1
        end = token.start() if depth == 0 else len(data)  # an unterminated array keeps what it has
        yield f"line {start_line} (element {number})", bytes(data[start:end])


def _json_lines(data: bytes | mmap.mmap) -> Iterator[tuple[str, bytes]]:
    position, number = 0, 0
    size = len(data)
    while position < size:
        end = data.find(b"\n", position)
        end = size if end < 0 else end
        number += 1
        line = bytes(data[position:end]).strip()
        if line:
            yield f"line {number}", line
        position = end + 1


def dump_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """(location, raw record) for every record of a dump file, read through mmap: memory stays small."""
    with open(path, "rb") as fh:
        if Path(path).stat().st_size == 0:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            first = re.search(rb"\S", data[:4096])
            if first is None:
                return
            reader = _array_elements if first.group() == b"[" else _json_lines
            yield from reader(data)


# --- checking ---


@dataclass
class Record:
    question_id: str
    model_a: str
    model_b: str
    choice: str
    judge: str
    modality: str
    tstamp: datetime
    prompts: list[str]
    answers_a: list[str]
    answers_b: list[str]
    categories: list[str]
    conv_metadata: dict[str, Any]
    counted: bool
    exclusion_reason: str
    risk_score: float


def _text(rec: dict[str, Any], key: str, *, limit: int, required: bool = True, default: str = "") -> str:
    value = rec.get(key)
    if value is None or value == "":
        if required:
            raise RowError(f"{key} is missing")
        return default
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"{key} must be text, got {type(value).__name__}")
    value = str(value)
    if len(value) > limit:
        raise RowError(f"{key} is longer than {limit} characters")
    return value


def _conversation(rec: dict[str, Any], side: str) -> tuple[list[str], list[str]] | None:
    """(user messages, this side's answers aligned to them), or None when the dump has no conversation."""
    messages = rec.get(f"conversation_{side}")
    if messages is None:
        return None
    if not isinstance(messages, list):
        raise RowError(f"conversation_{side} must be a list of messages")
    prompts: list[str] = []
    answers: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise RowError(f"conversation_{side}[{i}] must be an object with text content")
        if message.get("role") == "user":
            prompts.append(message["content"])
            answers.append("")
        elif message.get("role") == "assistant" and prompts:
            answers[-1] = message["content"]
    return prompts, answers


def _categories(rec: dict[str, Any], prompts: list[str]) -> list[str]:
    given = rec.get("categories")
    if given is None and isinstance(rec.get("category"), list):
        given = rec["category"]
    if given is not None:
        if not isinstance(given, list) or not all(isinstance(c, str) and 0 < len(c) <= 40 for c in given):
            raise RowError("categories must be a list of short labels")
        return list(dict.fromkeys(given))
    found = battle_categories(prompts) if prompts else []
    language = rec.get("language")
    if (
        isinstance(language, str)
        and language not in ("", "English", "unknown")
        and "non_english" not in found
    ):
        found.append("non_english")
    return found


def _tstamp(rec: dict[str, Any]) -> datetime:
    value = rec.get("tstamp")
    if value is None:
        return timezone.now()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RowError("tstamp must be unix seconds")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise RowError("tstamp is out of range") from None


def record_check(raw: bytes) -> Record:
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RowError(f"not valid JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise RowError("a record must be a JSON object")
    model_a = _text(rec, "model_a", limit=100)
    model_b = _text(rec, "model_b", limit=100)
    if model_a == model_b:
        raise RowError("model_a and model_b are the same model")
    winner = rec.get("winner")
    if winner not in _CHOICES:
        raise RowError(f"winner must be one of model_a, model_b, tie, tie (bothbad); got {winner!r}")
    modality = _text(rec, "modality", limit=10, required=False, default=Modality.TEXT)
    if modality not in Modality.values:
        raise RowError(f"unknown modality {modality!r}")
    side_a, side_b = _conversation(rec, "a"), _conversation(rec, "b")
    prompts = side_a[0] if side_a else side_b[0] if side_b else []
    metadata = rec.get("conv_metadata") or {}
    if not isinstance(metadata, dict):
        raise RowError("conv_metadata must be an object")
    counted = rec.get("counted", True)
    if not isinstance(counted, bool):
        raise RowError("counted must be true or false")
    risk = rec.get("risk_score", 0.0)
    if isinstance(risk, bool) or not isinstance(risk, int | float) or not 0.0 <= risk <= 1.0:
        raise RowError("risk_score must be a number from 0 to 1")
    return Record(
        question_id=_text(rec, "question_id", limit=32),
        model_a=model_a,
        model_b=model_b,
        choice=_CHOICES[winner],
        judge=_text(rec, "judge", limit=200, required=False, default="unknown"),
        modality=modality,
        tstamp=_tstamp(rec),
        prompts=prompts,
        answers_a=side_a[1] if side_a else [],
        answers_b=side_b[1] if side_b else [],
        categories=_categories(rec, prompts),
        conv_metadata=metadata,
        counted=counted,
        exclusion_reason=str(rec.get("exclusion_reason") or ("" if counted else "imported as not counted"))[
            :300
        ],
        risk_score=float(risk),
    )


# --- storing ---


def imported_session_hash(judge: str) -> str:
    """The marker of an imported voter; a judge id too long for the column is shortened to a hash."""
    room = 64 - len(IMPORTED_PREFIX)
    short = judge if len(judge) <= room else hashlib.sha256(judge.encode()).hexdigest()[:room]
    return IMPORTED_PREFIX + short


class _Batch:
    """Records checked but not stored yet, with their locations for errors found against the database.

    One attempt writes into a fresh ImportReport and model cache, merged only once its transaction commits:
    a rolled-back attempt leaves no trace in the counts or in the cache of models.
    """

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self.models: dict[str, ModelEntry] = {m.slug: m for m in ModelEntry.objects.all()}
        self.items: list[tuple[str, Record]] = []

    def store(self) -> int:
        """Write the batch in one transaction; a question_id stored meanwhile by another import is retried."""
        stored = len(self.items)
        for attempt in range(3):
            attempt_report, attempt_models = ImportReport(), dict(self.models)
            try:
                with transaction.atomic():
                    _Attempt(attempt_report, attempt_models).store(self.items)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            self.models = attempt_models
            self.report.imported += attempt_report.imported
            self.report.skipped_existing += attempt_report.skipped_existing
            self.report.errors += attempt_report.errors
            self.report.models_created += attempt_report.models_created
            self.report.modalities |= attempt_report.modalities
            break
        self.items = []
        return stored


class _Attempt:
    def __init__(self, report: ImportReport, models: dict[str, ModelEntry]) -> None:
        self.report, self.models = report, models

    def _model(self, slug: str, modality: str) -> ModelEntry:
        model = self.models.get(slug)
        if model is None:
            model, created = ModelEntry.objects.get_or_create(
                slug=slug,
                defaults={
                    "display_name": slug,
                    "modality": modality,
                    "backend_kind": IMPORTED_BACKEND,
                    "active": False,
                    "weight": 0.0,
                },
            )
            if created:
                self.report.models_created.append(slug)
            self.models[slug] = model
        if model.modality != modality:
            raise RowError(f"model {slug} exists here as a {model.modality} model, not {modality}")
        return model

    def _voters(self, judges: set[str]) -> dict[str, Voter]:
        hashes = {judge: imported_session_hash(judge) for judge in judges}
        found = {v.session_hash: v for v in Voter.objects.filter(session_hash__in=hashes.values())}
        missing = [Voter(session_hash=h) for h in set(hashes.values()) - set(found)]
        for voter in Voter.objects.bulk_create(missing):
            found[voter.session_hash] = voter
        return {judge: found[h] for judge, h in hashes.items()}

    def store(self, items: list[tuple[str, Record]]) -> None:
        existing = set(
            Battle.objects.filter(code__in=[r.question_id for _, r in items]).values_list("code", flat=True)
        )
        fresh: dict[str, tuple[Record, ModelEntry, ModelEntry]] = {}
        for location, rec in items:
            if rec.question_id in existing or rec.question_id in fresh:
                self.report.skipped_existing += 1
                continue
            try:
                pair = self._model(rec.model_a, rec.modality), self._model(rec.model_b, rec.modality)
            except RowError as exc:
                self.report.errors.append((location, str(exc)))
                continue
            fresh[rec.question_id] = (rec, *pair)
        if fresh:
            self._write(list(fresh.values()))

    def _write(self, rows: list[tuple[Record, ModelEntry, ModelEntry]]) -> None:
        voters = self._voters({rec.judge for rec, _, _ in rows})
        battles = Battle.objects.bulk_create(
            Battle(
                code=rec.question_id,
                modality=rec.modality,
                voter=voters[rec.judge],
                model_a=a,
                model_b=b,
                conversation=rec.prompts,
                status=Battle.Status.VOTED,
            )
            for rec, a, b in rows
        )
        Generation.objects.bulk_create(
            Generation(
                battle=battle,
                turn=turn,
                side=side,
                model=model,
                status=Generation.Status.DONE,
                output=(answers[turn] if turn < len(answers) else ""),
                finished_at=rec.tstamp,
            )
            for battle, (rec, a, b) in zip(battles, rows, strict=True)
            for side, model, answers in (("a", a, rec.answers_a), ("b", b, rec.answers_b))
            for turn in range(len(rec.prompts))
        )
        votes = Vote.objects.bulk_create(
            Vote(
                battle=battle,
                voter=voters[rec.judge],
                choice=rec.choice,
                counted=rec.counted,
                exclusion_reason=rec.exclusion_reason,
                categories=rec.categories,
                conv_metadata=rec.conv_metadata,
                **({"risk_score": rec.risk_score} if _HAS_RISK else {}),
            )
            for battle, (rec, _, _) in zip(battles, rows, strict=True)
        )
        # auto_now_add stamped the import time: put each battle's own time back, one query per table.
        _times_set(Battle, {b.id: rec.tstamp for b, (rec, _, _) in zip(battles, rows, strict=True)})
        _times_set(Vote, {v.id: rec.tstamp for v, (rec, _, _) in zip(votes, rows, strict=True)})
        tally_record(votes=[v for v in votes if v.counted], sign=+1)
        self.report.imported += len(rows)
        self.report.modalities.update(rec.modality for rec, _, _ in rows)


def _times_set(model: type[Battle] | type[Vote], times: dict[int, datetime]) -> None:
    whens = [When(id=pk, then=Value(at)) for pk, at in times.items()]
    model.objects.filter(id__in=list(times)).update(created_at=Case(*whens, output_field=DateTimeField()))


def battles_import(path: Path, *, progress: Any = None) -> ImportReport:
    """Import a dump file; see the module docstring. `progress(n)` is called after each stored batch."""
    report = ImportReport()
    batch = _Batch(report)
    for location, raw in dump_records(path):
        try:
            batch.items.append((location, record_check(raw)))
        except RowError as exc:
            report.errors.append((location, str(exc)))
        if len(batch.items) >= BATCH:
            _progress(progress, batch.store())
    if batch.items:
        _progress(progress, batch.store())
    report.errors.sort(key=lambda e: _line_of(e[0]))
    return report


def _progress(progress: Any, rows: int) -> None:
    if progress:
        progress(rows)


def _line_of(location: str) -> int:
    match = re.search(r"\d+", location)
    return int(match.group()) if match else 0
