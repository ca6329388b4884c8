"""Image and 3D battles in exports: per-criterion votes, each side's output file, and the files themselves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from arena.media import media_inspect, media_read
from tests.support.challenge import vote_post
from tests.support.media import client_voter, glb_bytes, media_battle_make, splat_bytes
from voting import export


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def voted_3d_battle(alice):
    battle = media_battle_make(
        voter=client_voter(alice),
        modality="3d",
        sides={"a": (glb_bytes("box"), "glb"), "b": (splat_bytes(), "splat")},
    )
    criteria = {"geometry": "a", "texture": "b"}
    assert vote_post(alice, battle.code, "a", body={"criteria": criteria}).status_code == 200
    return battle


@pytest.mark.django_db
def test_the_command_writes_criteria_and_output_files_and_copies_the_files(voted_3d_battle, tmp_path):
    out = tmp_path / "bundle" / "battles.jsonl"
    out.parent.mkdir()
    stderr = io.StringIO()
    call_command("export_battles", output=str(out), with_files=True, no_progress=True, stderr=stderr)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["criteria"] == {"geometry": "a", "texture": "b"}
    assert row["output_a"]["kind"] == "mesh" and row["output_b"]["kind"] == "splat"
    assert row["output_a"]["path"] == f"files/{voted_3d_battle.code}-a.glb"
    assert row["output_a"]["url"] == f"/m/{voted_3d_battle.code}/0/a.glb"
    assert row["model_a"] == voted_3d_battle.model_a.slug
    for side in "ab":
        copied = (out.parent / row[f"output_{side}"]["path"]).read_bytes()
        assert copied == media_read(voted_3d_battle.generations.get(side=side).media_name)
    assert (
        media_inspect((out.parent / row["output_a"]["path"]).read_bytes(), format_hint="glb").kind == "mesh"
    )
    assert "2 output files copied" in stderr.getvalue()


@pytest.mark.django_db
def test_parquet_keeps_criteria_and_outputs_as_json_text_and_text_battles_have_none(
    voted_3d_battle, arena_history, tmp_path
):
    arena_history(5)
    target = tmp_path / "battles.parquet"
    export.parquet_write(export.ExportFilter(with_files=True), str(target))
    rows = {r["question_id"]: r for r in pq.read_table(target).to_pylist()}
    media_row = rows[voted_3d_battle.code]
    assert json.loads(media_row["criteria"]) == {"geometry": "a", "texture": "b"}
    assert json.loads(media_row["output_b"])["meta"]["splats"] == 200
    text_rows = [r for code, r in rows.items() if code != voted_3d_battle.code]
    assert text_rows and all(r["output_a"] is None and json.loads(r["criteria"]) == {} for r in text_rows)
    plain = pq.read_table(_write(tmp_path, export.ExportFilter()))
    assert "output_a" not in plain.column_names and "criteria" in plain.column_names


def _write(tmp_path: Path, spec: export.ExportFilter) -> str:
    target = tmp_path / "plain.parquet"
    export.parquet_write(spec, str(target))
    return str(target)


@pytest.mark.django_db
def test_with_files_needs_an_output_to_copy_beside(voted_3d_battle):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--with-files needs --output"):
        call_command("export_battles", with_files=True, no_progress=True)
