"""Battles and their votes in the public battle-dump format (JSON lines, CSV or Parquet), streamed.

One record per voted battle: the public fields (`question_id`, `model_a`, `model_b`, `winner`, `judge`,
`turn`, `anony`, `language`, `tstamp`, optionally `conversation_a` / `conversation_b`, `conv_metadata`,
`category`) and Arena's own (`modality`, `categories`, `counted`, `exclusion_reason`, `risk_score`,
`imported`).

Memory stays bounded whatever the size: votes stream through one server-side cursor in pages of
ARENA_EXPORT_CHUNK rows, and Parquet is written one row group at a time. Speed: each page becomes Arrow
columns and every field is computed for the whole page at once (Python runs per page and per distinct model,
voter or category set, never per vote); JSON columns pass through as the database's text (never decoded and
re-encoded), and a page of JSON lines is one C++ join of its fields' JSON texts, byte for byte what orjson
would write for each record.

Privacy: `judge` is a salted hash of the voter (HMAC with ARENA_HASH_SALT, so stable across exports and
unlinkable without the salt); no address, session or fingerprint hash is ever exported. Votes imported from
a public dump keep the judge id they came with.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import operator
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, FloatField, Func, IntegerField, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Coalesce
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_naive, make_aware

from arena.errors import InvalidInput
from arena.models import Generation, Modality, ModelEntry
from voting.models import Vote, Voter

IMPORTED_PREFIX = "imported:"  # a Voter.session_hash starting with this came from import_battles

WINNER = {
    Vote.Choice.A: "model_a",
    Vote.Choice.B: "model_b",
    Vote.Choice.TIE: "tie",
    Vote.Choice.BOTH_BAD: "tie (bothbad)",
}
FORMATS = ("jsonl", "csv", "parquet")
# Vote fields exported when the vote model has them (the vote-integrity work adds the risk score).
_OPTIONAL = tuple(name for name in ("risk_score",) if any(f.name == name for f in Vote._meta.get_fields()))

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ExportFilter:
    since: datetime | None = None
    until: datetime | None = None
    modality: str | None = None
    model: str | None = None  # a model slug, on either side
    counted_only: bool = False
    with_conversations: bool = False
    with_files: bool = False  # image and 3D outputs: where each side's file is (and the command copies them)
    battle_ids: Sequence[int] | None = field(default=None)  # an admin selection


def _when(name: str, raw: str, *, end: bool) -> datetime:
    value = parse_datetime(raw)
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise InvalidInput(f"{name} must be a date (2025-01-31) or an ISO date-time, got {raw!r}.")
        # A bare date as --until means the whole of that day.
        value = datetime.combine(day, datetime.max.time() if end else datetime.min.time())
    return make_aware(value) if is_naive(value) else value


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise InvalidInput(f"{name} must be true or false, got {raw!r}.")
    return value in _TRUE


def export_filter_clean(params: Mapping[str, str]) -> ExportFilter:
    """An ExportFilter from query parameters or command options given as text; InvalidInput on a bad one."""
    modality = params.get("modality") or None
    if modality is not None and modality not in Modality.values:
        raise InvalidInput(f"Unknown modality {modality!r}; expected one of {', '.join(Modality.values)}.")
    since = _when("since", params["since"], end=False) if params.get("since") else None
    until = _when("until", params["until"], end=True) if params.get("until") else None
    if since and until and since > until:
        raise InvalidInput("since is after until.")
    return ExportFilter(
        since=since,
        until=until,
        modality=modality,
        model=params.get("model") or None,
        counted_only=_flag("counted_only", params.get("counted_only", "")),
        with_conversations=_flag("with_conversations", params.get("with_conversations", "")),
        with_files=_flag("with_files", params.get("with_files", "")),
    )


@functools.lru_cache(maxsize=4)
def _judge_key(salt: str) -> bytes:
    return hashlib.sha256(f"judge:{salt}".encode()).digest()


def _judge_hash(voter_id: int, key: bytes) -> str:
    # Keyed BLAKE2 is one C call: a million votes hash in a fraction of a second, unlike an HMAC per row.
    return "arena_" + hashlib.blake2b(str(voter_id).encode(), key=key, digest_size=12).hexdigest()


def judge_id(voter_id: int) -> str:
    """The exported, pseudonymous id of a voter: stable across exports, unlinkable without the salt."""
    return _judge_hash(voter_id, _judge_key(settings.ARENA_HASH_SALT))


def vote_queryset(spec: ExportFilter) -> QuerySet[Vote]:
    votes = Vote.objects.all()
    if spec.since:
        votes = votes.filter(created_at__gte=spec.since)
    if spec.until:
        votes = votes.filter(created_at__lte=spec.until)
    if spec.modality:
        votes = votes.filter(battle__modality=spec.modality)
    if spec.model:
        votes = votes.filter(Q(battle__model_a__slug=spec.model) | Q(battle__model_b__slug=spec.model))
    if spec.counted_only:
        votes = votes.filter(counted=True)
    if spec.battle_ids is not None:
        votes = votes.filter(battle_id__in=list(spec.battle_ids))
    return votes


def export_count(spec: ExportFilter) -> int:
    return vote_queryset(spec).count()


class JsonArrayLength(Func):
    """Turns are the length of the battle's user-message list, counted by the database (no decoding)."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


class UnixSeconds(Func):
    """A timestamp as float unix seconds, computed by the database: no datetime object per row."""

    output_field = FloatField()
    template = "((julianday(%(expressions)s) - 2440587.5) * 86400.0)"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            # date_part is float8 arithmetic; EXTRACT goes through numeric (slower, and the same double).
            compiler,
            connection,
            template="date_part('epoch', %(expressions)s)",
            **extra,
        )


# JSON columns of the vote, read as the database's text (annotation name -> field, text when empty).
_JSON_TEXT = {
    "categories_text": ("categories", "[]"),
    "metadata_text": ("conv_metadata", "{}"),
    "criteria_text": ("criteria", "{}"),
}

# What the database returns per vote, in this order, and as which Arrow type each column is kept.
_COLUMNS: dict[str, pa.DataType] = {
    "battle_id": pa.int64(),
    "battle__code": pa.string(),
    "battle__modality": pa.string(),
    "battle__model_a_id": pa.int64(),
    "battle__model_b_id": pa.int64(),
    "choice": pa.string(),
    "voter_id": pa.int64(),
    "tstamp": pa.float64(),
    "turns": pa.int64(),
    "counted": pa.bool_(),
    "exclusion_reason": pa.string(),
    **{name: pa.float64() for name in _OPTIONAL},
    **{name: pa.string() for name in _JSON_TEXT},
}
_SCHEMA = pa.schema(list(_COLUMNS.items()))


def _arrow_columns(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """Database rows as Arrow columns: one C-level pass per column, the rest of the export works on these."""
    arrays = []
    for i, type in enumerate(_COLUMNS.values()):
        values = list(map(operator.itemgetter(i), rows))
        try:
            arrays.append(pa.array(values, type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # SQLite's 0/1 for booleans
            arrays.append(pa.array(values).cast(type))
    return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)


Conversations = dict[int, dict[str, list[dict[str, str]]]]  # battle id -> side -> messages
Outputs = dict[tuple[int, str], dict[str, Any]]  # (battle id, side) -> the final output file's description


class _Lookup(dict[Any, Any]):
    """key -> value, each computed on first sight by `compute`, and `json[key]`, the value's JSON text, also
    computed once: for columns with few distinct values (model ids, choices, voters). With `kept`, it empties
    itself once it holds that many keys."""

    def __init__(
        self, compute: Callable[[Any], Any], *, kept: int | None = None, known: Iterable[tuple[Any, Any]] = ()
    ) -> None:
        super().__init__(known)
        self.compute, self.kept = compute, kept
        self.json = _Cache(lambda key: orjson.dumps(self[key]).decode(), kept=kept)

    def __missing__(self, key: Any) -> Any:
        if self.kept and len(self) >= self.kept:
            self.clear()
        value = self[key] = self.compute(key)
        return value

    def clear(self) -> None:
        super().clear()
        self.json.clear()

    def each(self, keys: Iterable[Any]) -> list[Any]:
        return list(map(self.__getitem__, keys))

    def each_json(self, keys: Iterable[Any]) -> list[str]:
        return list(map(self.json.__getitem__, keys))


class _Cache(dict[Any, Any]):
    """value -> compute(value), computed once; with `kept`, emptied once it holds that many values."""

    def __init__(self, compute: Callable[[Any], Any], *, kept: int | None = 100_000) -> None:
        super().__init__()
        self.compute, self.kept = compute, kept

    def __missing__(self, value: Any) -> Any:
        if self.kept and len(self) >= self.kept:
            self.clear()
        out = self[value] = self.compute(value)
        return out

    def each(self, values: Iterable[Any]) -> list[Any]:
        return list(map(self.__getitem__, values))


def _slugs() -> _Lookup:
    """Model id -> slug, loaded at once (models are few); one created during the export is read on sight."""
    return _Lookup(
        lambda model_id: ModelEntry.objects.values_list("slug", flat=True).get(id=model_id),
        known=ModelEntry.objects.values_list("id", "slug"),
    )


class _Judges(_Lookup):
    """Voter id -> exported judge id for one export, each voter hashed once. export_pages puts in imported
    voters' own ids, and empties it between pages (never within one) once it holds `KEPT` voters."""

    KEPT = 200_000  # some 50 MB at most

    def __init__(self, key: bytes) -> None:
        super().__init__(lambda voter_id: _judge_hash(voter_id, key))


@dataclass
class Page:
    """A page of votes as Arrow columns of _COLUMNS (JSON columns still as text) and what they refer to."""

    columns: pa.RecordBatch
    slugs: _Lookup  # model id -> slug
    judges: _Lookup  # voter id -> exported judge id
    imported: dict[int, str] = field(default_factory=dict)  # voter id -> original judge, for imported votes
    conversations: Conversations = field(default_factory=dict)
    outputs: Outputs = field(default_factory=dict)

    def __len__(self) -> int:
        return self.columns.num_rows

    def __getitem__(self, column: str) -> pa.Array:
        return self.columns.column(column)


def _rows_query(spec: ExportFilter) -> QuerySet:
    return (
        vote_queryset(spec)
        .annotate(
            tstamp=UnixSeconds("created_at"),
            turns=Coalesce(JsonArrayLength(F("battle__conversation")), 0),
            **{
                name: Coalesce(Cast(source, TextField()), Value(empty), output_field=TextField())
                for name, (source, empty) in _JSON_TEXT.items()
            },
        )
        # Battle order, not vote order: the join walks both tables in battle id order already, while
        # ordering by vote id would sort every wide row first (measured: twice as slow at a million).
        .order_by("battle_id")
        .values_list(*_COLUMNS)
    )


@contextlib.contextmanager
def _read_snapshot() -> Iterator[None]:
    """One transaction for the whole export: a consistent snapshot, and on PostgreSQL a server-side cursor
    that streams (outside a transaction Django declares it WITH HOLD, which materialises every row first).
    The whole result is wanted, so the planner is told to plan for throughput rather than first rows."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        yield


def _imported_judges(voter_ids: set[int]) -> dict[int, str]:
    voters = Voter.objects.filter(id__in=voter_ids, session_hash__startswith=IMPORTED_PREFIX)
    return {vid: h.removeprefix(IMPORTED_PREFIX) for vid, h in voters.values_list("id", "session_hash")}


def _page_range(field_name: str, ids: Sequence[int]) -> dict[str, Any]:
    """A page's battles are a run of ids: a range is one cheap condition, where an IN list of thousands of
    parameters costs more to build than the rows it fetches. A sparse page (a narrow filter) uses IN."""
    first, last = min(ids), max(ids)
    if last - first < 2 * len(ids):
        return {f"{field_name}__range": (first, last)}
    return {f"{field_name}__in": list(ids)}


def _conversations(battle_ids: Sequence[int]) -> Conversations:
    """Both sides' OpenAI-style message lists for a page of battles: two queries per page."""
    from arena.models import Battle

    wanted = set(battle_ids)
    battles = (
        Battle.objects.filter(**_page_range("id", battle_ids))
        .annotate(text=Cast("conversation", TextField()))
        .values_list("id", "text")
    )
    prompts = {bid: orjson.loads(text) for bid, text in battles if bid in wanted}
    said: dict[tuple[int, str], dict[int, str]] = {}
    generations = Generation.objects.filter(**_page_range("battle__id", battle_ids)).values_list(
        "battle_id", "side", "turn", "output"
    )
    for battle_id, side, turn, output in generations:
        if battle_id in wanted:
            said.setdefault((battle_id, side), {})[turn] = output
    out: Conversations = {}
    for battle_id, user_messages in prompts.items():
        asked = [{"role": "user", "content": prompt} for prompt in user_messages]  # shared by both sides
        out[battle_id] = {}
        for side in "ab":
            answers, messages = said.get((battle_id, side), {}), []
            for turn, question in enumerate(asked):
                messages += (question, {"role": "assistant", "content": answers.get(turn, "")})
            out[battle_id][side] = messages
    return out


def output_file_name(code: str, side: str, fmt: str) -> str:
    """Where an export bundle keeps a side's output file, beside the rows: files/<question_id>-a.glb."""
    return f"files/{code}-{side}.{fmt}"


def _outputs(battle_ids: Sequence[int]) -> Outputs:
    """Each side's last image or 3D output for a page of battles: one query per page."""
    from django.urls import reverse

    wanted = set(battle_ids)
    rows = (
        Generation.objects.filter(**_page_range("battle__id", battle_ids))
        .exclude(media_name="")
        .order_by("battle_id", "side", "turn")
        .values_list("battle_id", "battle__code", "side", "turn", "media_format", "media_kind", "media_meta")
    )
    out: Outputs = {}
    for battle_id, code, side, turn, fmt, kind, meta in rows:
        if battle_id in wanted:  # later turns overwrite earlier ones
            url = reverse("arena:battle-media", kwargs={"code": code, "turn": turn, "side": side, "ext": fmt})
            out[(battle_id, side)] = {
                "format": fmt,
                "kind": kind,
                "meta": meta,
                "path": output_file_name(code, side, fmt),
                "url": url,
            }
    return out


def export_files_copy(spec: ExportFilter, directory: str, *, progress: Progress | None = None) -> int:
    """Copy the exported battles' output files into `directory`/files/ under the names the rows give them.
    Reads one file at a time from the storage, so memory stays bounded. Returns the number of files."""
    import os
    import shutil

    from django.core.files.storage import default_storage

    battles = vote_queryset(spec).values("battle_id")
    rows = (
        Generation.objects.filter(battle_id__in=battles)
        .exclude(media_name="")
        .order_by("battle_id", "side", "turn")
        .values_list("battle_id", "battle__code", "side", "media_name", "media_format")
    )
    latest: dict[tuple[int, str], tuple[str, str, str]] = {}
    for battle_id, code, side, name, fmt in rows.iterator(chunk_size=2_000):
        latest[(battle_id, side)] = (code, name, fmt)
    os.makedirs(os.path.join(directory, "files"), exist_ok=True)
    for (_, side), (code, name, fmt) in latest.items():
        target = os.path.join(directory, output_file_name(code, side, fmt))
        with default_storage.open(name, "rb") as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
        if progress:
            progress(1)
    return len(latest)


def _batches_here(spec: ExportFilter, size: int, *, stream: bool = False) -> Iterator[pa.RecordBatch]:
    """The votes, `size` rows at a time as Arrow columns (built here: in the reader thread, if there is one).

    By default through Django's chunked (server-side) cursor, which is what `.iterator()` uses: plain tuples,
    without Django's per-row conversions, and other queries may run on the connection between two batches.
    With `stream` the whole result comes in one go, in chunks (libpq 17's chunked rows mode): the database
    keeps producing rows while the last ones are converted, where a cursor waits for each FETCH (measured: a
    fifth less database CPU, a quarter less time). The connection is then busy till the last row, so only
    the reader thread, on its own connection, streams.
    """
    with _read_snapshot():
        sql, params = _rows_query(spec).query.sql_with_params()
        if stream:
            import psycopg

            # A plain psycopg cursor: Django's binds parameters client-side, which rules out binary results.
            with psycopg.Cursor(connection.connection) as cursor:
                rows = cursor.stream(sql, params, binary=True, size=size)
                try:
                    while batch := list(itertools.islice(rows, size)):
                        yield _arrow_columns(batch)
                finally:
                    rows.close()  # early: cancels the query and drains what was sent
            return
        with connection.chunked_cursor() as cursor:
            if connection.vendor == "postgresql":
                # Numbers and booleans in binary: no text to parse per value (text columns come the same).
                cursor.cursor.execute(sql, params, binary=True)
            else:
                cursor.execute(sql, params)
            while batch := cursor.fetchmany(size):
                yield _arrow_columns(batch)


def _can_stream() -> bool:
    if connection.vendor != "postgresql":
        return False
    import psycopg

    return psycopg.pq.version() >= 170000


_DONE = object()


def _batches_prefetched(spec: ExportFilter, size: int) -> Iterator[pa.RecordBatch]:
    """The same batches, read by a helper thread on its own connection while the caller formats the last
    one: the database and the formatting then use two cores instead of taking turns on one. At most two
    batches wait in the queue, so memory stays bounded."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        """Wait for room in the queue; False once the caller has stopped listening."""
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                handoff.put(item, timeout=0.1)
                return True
        return False

    def read() -> None:
        batches = _batches_here(spec, size, stream=_can_stream())
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the caller, which raises it
            hand_over(exc)
        finally:
            batches.close()  # ends the transaction and its cursor before the connection goes
            connections.close_all()  # this thread's own connection

    reader = threading.Thread(target=read, name="export-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def export_pages(spec: ExportFilter, *, chunk: int | None = None) -> Iterator[Page]:
    """Votes in battle order, `chunk` rows at a time, read through one streaming cursor (`.iterator`).

    Inside a caller's transaction the rows are read on the caller's connection (its uncommitted rows must
    be seen); otherwise, on PostgreSQL, a helper thread reads ahead (see _batches_prefetched).
    """
    size = chunk or settings.ARENA_EXPORT_CHUNK
    slugs = _slugs()
    # Imported voters are looked up per page only if there are any: a live deployment pays nothing.
    any_imported = Voter.objects.filter(session_hash__startswith=IMPORTED_PREFIX).exists()
    ahead = connection.vendor == "postgresql" and not connection.in_atomic_block
    judges = _Judges(_judge_key(settings.ARENA_HASH_SALT))
    for batch in (_batches_prefetched if ahead else _batches_here)(spec, size):
        if len(judges) > judges.KEPT:
            judges.clear()
        page = Page(batch, slugs, judges)
        if any_imported:
            page.imported = _imported_judges(set(pc.unique(page["voter_id"]).to_pylist()))
            judges.update(page.imported)
        if spec.with_conversations:
            page.conversations = _conversations(page["battle_id"].to_pylist())
        if spec.with_files:
            page.outputs = _outputs(page["battle_id"].to_pylist())
        yield page


# --- The exported fields ---
#
# Each field makes a whole page's column at once, as Arrow arrays: its values (for Parquet, and for CSV)
# and its JSON texts (for JSON lines: a page is then one element-wise join of those texts, done in C++).
# Python runs per page and per distinct value (a model, a voter, a category set), never per vote.

_STRING_JSON = _Cache(lambda text: orjson.dumps(text).decode())  # keyed by strings only (1 == True)
_LABELS = _Cache(orjson.loads)  # categories text -> list of labels
# Arena detects non-English prompts (a category) but not which language they are in.
_LANGUAGES = _Lookup(lambda text: "unknown" if '"non_english"' in text else "English", kept=100_000)
_WINNERS = _Lookup(WINNER.__getitem__, known=WINNER.items())
_ESCAPED = r'["\\\x00-\x1f]'  # what orjson escapes in a string; nothing else
_TEXT = pa.large_string()  # JSON texts: 64-bit offsets, so a page of long conversations cannot overflow
_JSON_TRUE, _JSON_FALSE, _JSON_NULL = (pa.scalar(text, _TEXT) for text in ("true", "false", "null"))

JsonTexts = pa.Array | pa.Scalar  # one JSON text per row, or a scalar: the same for every row


def _distinct(keys: pa.Array, each: Callable[[list[Any]], list[Any]], type: pa.DataType) -> pa.Array:
    """`each` of the keys, computed once per distinct key (in Python) and spread over the rows (in C++)."""
    encoded = keys.dictionary_encode()
    return pc.take(pa.array(each(encoded.dictionary.to_pylist()), type), encoded.indices)


def _json_scalars(values: pa.Array) -> JsonTexts:
    """Numbers and booleans, as orjson writes them (null as null)."""
    if pa.types.is_boolean(values.type):
        texts = pc.if_else(values, _JSON_TRUE, _JSON_FALSE)
    elif pa.types.is_integer(values.type):
        texts = values.cast(_TEXT)
    elif len(values) == 0:
        return pa.array([], _TEXT)
    else:  # floats: orjson's own shortest form, written in one call for the page, then split
        joined = orjson.dumps(values.to_numpy(zero_copy_only=False), option=orjson.OPT_SERIALIZE_NUMPY)
        texts = pc.split_pattern(pa.array([joined[1:-1]], pa.large_binary()).cast(_TEXT), ",").flatten()
    return texts.fill_null(_JSON_NULL) if values.null_count else texts


def _json_strings(values: pa.Array) -> JsonTexts:
    """Distinct strings (ids), as orjson writes them: quoted as they are unless one needs an escape (rare),
    and then one by one."""
    if values.null_count or pc.any(pc.match_substring_regex(values, _ESCAPED)).as_py():
        return pa.array([orjson.dumps(value).decode() for value in values.to_pylist()], _TEXT)
    quote = pa.scalar('"', _TEXT)
    return pc.binary_join_element_wise(quote, values.cast(_TEXT), quote, pa.scalar("", _TEXT))


def _json_repeated(values: pa.Array) -> JsonTexts:
    """Strings among few distinct values (modalities, reasons): each encoded once."""
    return _distinct(values, _STRING_JSON.each, _TEXT)


def _json_as_is(values: pa.Array) -> JsonTexts:
    """JSON text from the database, written unchanged (never decoded and re-encoded)."""
    return values


def _json_objects(values: pa.Array) -> JsonTexts:
    """Lists and structs (one orjson call each)."""
    return pa.array([orjson.dumps(value).decode() for value in values.to_pylist()], _TEXT)


Values = Callable[[Page], pa.Array]


@dataclass(frozen=True)
class Field:
    """One exported field: its Parquet type, its values for a page, and how JSON lines write them."""

    name: str
    arrow: pa.DataType
    values: Values  # an array of `arrow`: for Parquet, and for CSV (flat fields)
    encode: Callable[[pa.Array], JsonTexts] = _json_scalars  # values -> their JSON texts
    text: Callable[[Page], JsonTexts] | None = None  # the JSON texts straight from the page, if at hand
    wanted: Callable[[ExportFilter], bool] = lambda spec: True

    def json(self, page: Page) -> JsonTexts:
        return self.text(page) if self.text else self.encode(self.values(page))


def _column(name: str) -> Values:
    return lambda page: page[name]


def _looked_up(name: str, column: str, lookup: Callable[[Page], _Lookup]) -> Field:
    """A string field that is a function of one column with few distinct values (the slug of a model id):
    the value and its JSON text computed once per distinct key."""
    return Field(
        name,
        pa.string(),
        lambda page: _distinct(page[column], lookup(page).each, pa.string()),
        text=lambda page: _distinct(page[column], lookup(page).each_json, _TEXT),
    )


def _messages(page: Page, side: str) -> list[list[dict[str, str]]]:
    return [page.conversations.get(b, {}).get(side, []) for b in page["battle_id"].to_pylist()]


def _conversation(name: str, side: str) -> Field:
    return Field(
        name,
        _MESSAGES,
        lambda page: pa.array(_messages(page, side), _MESSAGES),
        text=lambda page: pa.array([orjson.dumps(m).decode() for m in _messages(page, side)], _TEXT),
        wanted=lambda spec: spec.with_conversations,
    )


def _output(name: str, side: str) -> Field:
    """An image or 3D side's output file ({"format", "kind", "meta", "path", "url"}; null for text), as JSON
    text: Parquet and CSV keep it as a JSON string, like conv_metadata."""

    def texts(page: Page) -> pa.Array:
        found = [page.outputs.get((b, side)) for b in page["battle_id"].to_pylist()]
        return pa.array([None if o is None else orjson.dumps(o).decode() for o in found], pa.string())

    return Field(
        name,
        pa.string(),
        texts,
        text=lambda page: texts(page).cast(_TEXT).fill_null(_JSON_NULL),
        wanted=lambda spec: spec.with_files,
    )


def _anony(page: Page) -> pa.Array:
    return pa.nulls(len(page), pa.bool_()).fill_null(True)


def _labels(page: Page) -> pa.Array:
    return _distinct(page["categories_text"], _LABELS.each, _LABEL_LIST)


def _turn(page: Page) -> pa.Array:
    return page["turns"].cast(pa.int32())


def _imported(page: Page) -> pa.Array:
    return pc.is_in(page["voter_id"], value_set=pa.array(list(page.imported), pa.int64()))


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_LABEL_LIST = pa.list_(pa.string())
_CATEGORIES_TEXT = _column("categories_text")

# In export order. Adding a field is a line here, reading one of _COLUMNS (a plain column of the vote or its
# battle is one line there; a JSON one, kept as text, one line in _JSON_TEXT and written with _json_as_is).
FIELDS: tuple[Field, ...] = (
    Field("question_id", pa.string(), _column("battle__code"), _json_strings),
    _looked_up("model_a", "battle__model_a_id", lambda page: page.slugs),
    _looked_up("model_b", "battle__model_b_id", lambda page: page.slugs),
    _looked_up("winner", "choice", lambda page: _WINNERS),
    _looked_up("judge", "voter_id", lambda page: page.judges),
    Field("turn", pa.int32(), _turn),
    Field("anony", pa.bool_(), _anony, text=lambda page: _JSON_TRUE),
    _looked_up("language", "categories_text", lambda page: _LANGUAGES),
    Field("tstamp", pa.float64(), _column("tstamp")),
    _conversation("conversation_a", "a"),
    _conversation("conversation_b", "b"),
    Field("conv_metadata", pa.string(), _column("metadata_text"), _json_as_is),  # its keys vary between dumps
    Field("category", _LABEL_LIST, _labels, text=_CATEGORIES_TEXT),
    Field("modality", pa.string(), _column("battle__modality"), _json_repeated),
    Field("categories", _LABEL_LIST, _labels, text=_CATEGORIES_TEXT),
    Field("counted", pa.bool_(), _column("counted")),
    Field("exclusion_reason", pa.string(), _column("exclusion_reason"), _json_repeated),
    Field("imported", pa.bool_(), _imported),
    Field("criteria", pa.string(), _column("criteria_text"), _json_as_is),  # per-criterion choices, or {}
    _output("output_a", "a"),
    _output("output_b", "b"),
    *(Field(name, pa.float64(), _column(name)) for name in _OPTIONAL),
)


def export_fields(spec: ExportFilter) -> list[Field]:
    return [f for f in FIELDS if f.wanted(spec)]


# --- JSON lines ---


def jsonl_page(page: Page, fields: Sequence[Field]) -> pa.Buffer:
    """A page as JSON lines: the same bytes as orjson.dumps of each record (JSON columns as Fragments)."""
    pieces: list[Any] = []
    for i, f in enumerate(fields):
        pieces.append(pa.scalar(("{" if i == 0 else ",") + orjson.dumps(f.name).decode() + ":", _TEXT))
        texts = f.json(page)
        pieces.append(texts if texts.type == _TEXT else texts.cast(_TEXT))
    pieces.append(pa.scalar("}\n", _TEXT))
    lines = pc.binary_join_element_wise(*pieces, pa.scalar("", _TEXT))
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return pa.py_buffer(b"")
    # The lines back to back are the array's data buffer, between the first and the last offset.
    offsets = np.frombuffer(lines.buffers()[1], np.int64)
    return lines.buffers()[2][int(offsets[lines.offset]) : int(offsets[lines.offset + len(lines)])]


def jsonl_buffers(spec: ExportFilter, *, progress: Progress | None = None) -> Iterator[pa.Buffer]:
    """JSON lines, one buffer per page (writable to a file as it is, without a copy to bytes)."""
    fields = export_fields(spec)
    for page in export_pages(spec):
        yield jsonl_page(page, fields)
        if progress:
            progress(len(page))


def jsonl_chunks(spec: ExportFilter, *, progress: Progress | None = None) -> Iterator[bytes]:
    """JSON lines, one bytes chunk per page."""
    for buffer in jsonl_buffers(spec, progress=progress):
        yield buffer.to_pybytes()


# --- CSV ---


def csv_header(spec: ExportFilter) -> list[str]:
    return [f.name for f in export_fields(spec)]


def csv_chunks(spec: ExportFilter, *, progress: Progress | None = None) -> Iterator[bytes]:
    """CSV with a header; list and object columns hold their JSON text."""
    fields = export_fields(spec)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([f.name for f in fields])
    for page in export_pages(spec):
        cells = (f.json(page) if pa.types.is_nested(f.arrow) else f.values(page) for f in fields)
        writer.writerows(zip(*(c.to_pylist() for c in cells), strict=True))
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if progress:
            progress(len(page))
    if buffer.tell():
        yield buffer.getvalue().encode()


# --- Parquet ---


def parquet_schema(spec: ExportFilter) -> pa.Schema:
    return pa.schema([(f.name, f.arrow) for f in export_fields(spec)])


def _record_batch(page: Page, fields: Sequence[Field], schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([f.values(page) for f in fields], schema=schema)


def _parquet_row_groups(
    spec: ExportFilter, writer: pq.ParquetWriter, row_group_rows: int, progress: Progress | None
) -> Iterator[None]:
    """Writes the export into `writer`, a row group per `row_group_rows` rows, yielding after each full one
    (the last, shorter one is written without a pause)."""
    fields, schema = export_fields(spec), writer.schema
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for page in export_pages(spec):
        pending.append(_record_batch(page, fields, schema))
        pending_rows += len(page)
        if pending_rows >= row_group_rows:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)
            pending, pending_rows = [], 0
            yield
        if progress:
            progress(len(page))
    if pending:
        writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=pending_rows)


class _Counted:
    def __init__(self, progress: Progress | None) -> None:
        self.rows, self.progress = 0, progress

    def __call__(self, rows: int) -> None:
        self.rows += rows
        if self.progress:
            self.progress(rows)


def parquet_write(
    spec: ExportFilter,
    sink: str | BinaryIO,
    *,
    row_group_rows: int = 100_000,
    progress: Progress | None = None,
) -> int:
    """Write Parquet to a path or a binary stream, one row group per `row_group_rows`. Returns the rows."""
    schema, counted = parquet_schema(spec), _Counted(progress)
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for _ in _parquet_row_groups(spec, writer, row_group_rows, counted):
            pass
        if counted.rows == 0:  # still a readable file
            writer.write_table(schema.empty_table(), row_group_size=1)
    return counted.rows


class _ChunkSink(io.RawIOBase):
    """A write-only stream that hands out what was written so far: Parquet over HTTP, by row group."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def parquet_chunks(spec: ExportFilter, *, row_group_rows: int = 50_000) -> Iterator[bytes]:
    """Parquet as a byte stream (the footer comes last, so a reader needs the whole response)."""
    sink = _ChunkSink()
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), parquet_schema(spec), compression="zstd") as writer:
        for _ in _parquet_row_groups(spec, writer, row_group_rows, None):
            yield sink.take()
    yield sink.take()


def export_chunks(spec: ExportFilter, fmt: str, *, progress: Progress | None = None) -> Iterator[bytes]:
    if fmt == "jsonl":
        return jsonl_chunks(spec, progress=progress)
    if fmt == "csv":
        return csv_chunks(spec, progress=progress)
    if fmt == "parquet":
        return parquet_chunks(spec)
    raise InvalidInput(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")


def selection(spec: ExportFilter, battle_ids: Sequence[int]) -> ExportFilter:
    return replace(spec, battle_ids=list(battle_ids))
