"""The battle export: public-format fields, pseudonymous judges, filters, and CSV/Parquet read back."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta

import orjson
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from voting import export
from voting.models import Vote, Voter

pytestmark = pytest.mark.django_db

PUBLIC = ["question_id", "model_a", "model_b", "winner", "judge", "turn", "anony", "language", "tstamp"]


def jsonl(spec: export.ExportFilter) -> list[dict]:
    return [orjson.loads(line) for line in b"".join(export.jsonl_chunks(spec)).splitlines()]


def test_a_record_has_the_public_fields_and_arenas_own(arena_history):
    votes = arena_history(14)
    records = jsonl(export.ExportFilter())
    assert len(records) == 14
    first, vote = records[0], votes[0]
    assert list(first)[: len(PUBLIC)] == PUBLIC
    assert first["question_id"] == vote.battle.code and first["model_a"] == vote.battle.model_a.slug
    assert first["winner"] == export.WINNER[vote.choice] and first["anony"] is True
    assert first["tstamp"] == vote.created_at.timestamp() and first["turn"] == 2
    assert (
        first["conv_metadata"] == vote.conv_metadata and first["conv_metadata"]["sum_assistant_a_tokens"] > 0
    )
    assert first["categories"] == vote.categories == first["category"]
    assert first["modality"] == "image" and first["counted"] is False and "names" not in first
    assert first["exclusion_reason"] == vote.exclusion_reason and "risk_score" in first
    assert "conversation_a" not in first, "conversations only when asked"
    assert not any(r["imported"] for r in records)


def test_judges_are_salted_stable_and_reveal_no_address(arena_history, settings):
    arena_history(30)
    records = jsonl(export.ExportFilter())
    voters = {v.code: v for v in Voter.objects.all()}
    judges = {r["judge"] for r in records}
    assert len(judges) == len({v.voter_id for v in Vote.objects.all()})
    assert jsonl(export.ExportFilter()) == records, "the same judge ids on every export"
    text = orjson.dumps(records).decode()
    for voter in voters.values():
        assert voter.code not in text and voter.ip_hash not in text and voter.session_hash not in text
    settings.ARENA_HASH_SALT = "another-salt"
    assert {r["judge"] for r in jsonl(export.ExportFilter())}.isdisjoint(judges), "the salt is the secret"


def test_filters_by_date_modality_model_and_counted(arena_history):
    votes = arena_history(40)
    old = votes[:10]
    Vote.objects.filter(id__in=[v.id for v in old]).update(created_at=timezone.now() - timedelta(days=30))
    recent = export.export_filter_clean({"since": (timezone.now() - timedelta(days=1)).date().isoformat()})
    assert len(jsonl(recent)) == 30
    until = export.export_filter_clean({"until": (timezone.now() - timedelta(days=2)).date().isoformat()})
    assert len(jsonl(until)) == 10
    images = jsonl(export.export_filter_clean({"modality": "image"}))
    assert images and all(r["modality"] == "image" for r in images) and len(images) == 4
    slug = votes[1].battle.model_a.slug
    with_model = jsonl(export.export_filter_clean({"model": slug}))
    assert with_model and all(slug in (r["model_a"], r["model_b"]) for r in with_model)
    counted = jsonl(export.export_filter_clean({"counted_only": "true"}))
    assert len(counted) == sum(v.counted for v in votes) and all(r["counted"] for r in counted)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"since": "last week"}, "since must be a date"),
        ({"modality": "smell"}, "Unknown modality"),
        ({"counted_only": "maybe"}, "counted_only must be true or false"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "since is after until"),
    ],
)
def test_a_bad_filter_is_refused_with_the_reason(params, message):
    with pytest.raises(export.InvalidInput, match=message):
        export.export_filter_clean(params)


def test_conversations_are_openai_style_message_lists(arena_history):
    arena_history(8)
    record = jsonl(export.ExportFilter(with_conversations=True))[7]
    assert [m["role"] for m in record["conversation_a"]] == ["user", "assistant"] * record["turn"]
    assert record["conversation_a"][0] == record["conversation_b"][0]


def test_csv_reads_back_with_a_header_and_json_cells(arena_history):
    arena_history(12)
    text = b"".join(export.csv_chunks(export.ExportFilter())).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 12 and list(rows[0])[: len(PUBLIC)] == PUBLIC
    assert orjson.loads(rows[0]["conv_metadata"])["sum_user_tokens"] > 0
    assert isinstance(orjson.loads(rows[0]["categories"]), list) and rows[0]["counted"] in ("True", "False")


def test_parquet_reads_back_with_typed_columns_in_row_groups(arena_history, tmp_path, settings):
    arena_history(25)
    settings.ARENA_EXPORT_CHUNK = 10  # small pages, to exercise several pages and row groups
    path = tmp_path / "battles.parquet"
    spec = export.ExportFilter(with_conversations=True)
    assert export.parquet_write(spec, str(path), row_group_rows=10) == 25
    table = pq.read_table(path)
    assert table.num_rows == 25 and pq.ParquetFile(path).num_row_groups == 3
    assert table.column_names == export.parquet_schema(spec).names
    assert (
        str(table.schema.field("turn").type) == "int32" and str(table.schema.field("counted").type) == "bool"
    )
    for row, record in zip(table.to_pylist(), jsonl(spec), strict=True):
        assert orjson.loads(row.pop("conv_metadata")) == record.pop("conv_metadata"), "JSON text in Parquet"
        assert orjson.loads(row.pop("criteria")) == record.pop("criteria"), "JSON text in Parquet"
        assert row == record


AWKWARD_CODES = ['q"uote', "back\\slash", "new\nline", "tab\tand\x01", "ünïcødé ✓", "50%s, %d"]


def test_json_lines_are_orjsons_bytes_and_parquet_holds_the_same_values(arena_history, tmp_path, settings):
    """Records are built a page at a time, not one by one: each line must still be exactly what orjson
    writes for the record (strings needing escapes, float forms, the database's JSON text kept as it is),
    and the Parquet rows, CSV cells and JSON lines must agree, for hashed and imported judges alike."""
    votes = arena_history(12)
    for vote, code in zip(votes, AWKWARD_CODES, strict=False):
        vote.battle.code = code
        vote.battle.save(update_fields=["code"])
    odd_floats = [1e-7, 1e16, 123456789012345.6, 0.00001, 0.1 + 0.2, 5e-324]
    for vote, risk in zip(votes[3:], odd_floats, strict=False):
        Vote.objects.filter(id=vote.id).update(risk_score=risk)
    Vote.objects.filter(id=votes[0].id).update(
        exclusion_reason='a "quoted"\nreason\x02',
        created_at=timezone.now() - timedelta(microseconds=123_457),
        categories=["coding", "non_english", 'x"y'],
        conv_metadata={"text": "back\\slash", "n": [1.5, None, True]},
    )
    Voter.objects.filter(id=votes[1].voter_id).update(session_hash='imported:judge "7"')
    settings.ARENA_EXPORT_CHUNK = 5  # several pages
    spec = export.ExportFilter(with_conversations=True)
    stored = Vote.objects.values_list(
        "battle__code", Cast("categories", TextField()), Cast("conv_metadata", TextField())
    )
    texts = {code: (categories, metadata) for code, categories, metadata in stored}  # the database's JSON
    lines = b"".join(export.jsonl_chunks(spec)).splitlines(keepends=True)
    records = []
    for line in lines:
        record = orjson.loads(line)
        records.append(record)
        categories, metadata = texts[record["question_id"]]
        expected = {
            **record,
            "conv_metadata": orjson.Fragment(metadata),
            "category": orjson.Fragment(categories),
            "categories": orjson.Fragment(categories),
        }
        assert line == orjson.dumps(expected, option=orjson.OPT_APPEND_NEWLINE)
    by_code = {r["question_id"]: r for r in records}
    assert set(AWKWARD_CODES) <= set(by_code) and len(records) == 12
    imported = [r for r in records if r["imported"]]
    assert imported and all(r["judge"] == 'judge "7"' for r in imported)
    assert {r["risk_score"] for r in records} >= set(odd_floats)
    first = by_code['q"uote']
    assert first["language"] == "unknown" and first["exclusion_reason"] == 'a "quoted"\nreason\x02'

    path = tmp_path / "battles.parquet"
    export.parquet_write(spec, str(path), row_group_rows=5)
    for row, record in zip(pq.read_table(path).to_pylist(), records, strict=True):
        assert orjson.loads(row.pop("conv_metadata")) == record.pop("conv_metadata")
        assert orjson.loads(row.pop("criteria")) == record.pop("criteria")
        assert row == record
    cells = list(csv.DictReader(io.StringIO(b"".join(export.csv_chunks(spec)).decode(), newline="")))
    assert [c["question_id"] for c in cells] == [r["question_id"] for r in records]
    assert [float(c["tstamp"]) for c in cells] == [r["tstamp"] for r in records]


def test_an_empty_export_is_still_a_readable_file(db, tmp_path):
    path = tmp_path / "none.parquet"
    assert export.parquet_write(export.ExportFilter(), str(path)) == 0
    assert pq.read_table(path).num_rows == 0
    assert b"".join(export.csv_chunks(export.ExportFilter())).decode().startswith("question_id,model_a")


def test_the_command_writes_each_format_and_draws_progress_on_stderr(arena_history, tmp_path):
    arena_history(12)
    for name in ("out.jsonl", "out.csv", "out.parquet"):
        err = io.StringIO()
        call_command("export_battles", "--output", str(tmp_path / name), stderr=err)
        assert (tmp_path / name).stat().st_size > 0 and not (tmp_path / f"{name}.part").exists()
        assert "[##############################] 100% 12/12 votes" in err.getvalue()
        assert err.getvalue().endswith(f"12 votes written to {tmp_path / name}\n")
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 12
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 12


def test_the_command_refuses_parquet_to_standard_output_and_unknown_extensions(db, tmp_path):
    with pytest.raises(CommandError, match="Parquet needs --output"):
        call_command("export_battles", "--format", "parquet", "--no-progress")
    with pytest.raises(CommandError, match="Cannot tell the format"):
        call_command("export_battles", "--output", str(tmp_path / "x.xlsx"))


def reader_running() -> bool:
    return any(t.name == "export-reader" for t in threading.enumerate())


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_reader_thread_reads_ahead_with_the_same_result(arena_history, settings):
    arena_history(30)
    settings.ARENA_EXPORT_CHUNK = 7
    spec = export.ExportFilter(with_conversations=True)
    ahead, seen_reader = [], False
    for chunk in export.jsonl_chunks(spec):
        ahead.append(chunk)
        seen_reader = seen_reader or reader_running()
    with transaction.atomic():
        here = list(export.jsonl_chunks(spec))
    assert seen_reader and ahead == here and len(ahead) == 5
    pages = export.export_pages(spec)
    next(pages)
    pages.close()  # a client that hangs up: the reader stops and gives its connection back
    assert not reader_running()
