"""Export battles and votes in the public battle-dump format: JSON lines, CSV or Parquet.

python manage.py export_battles --output battles.jsonl --since 2025-01-01 --counted-only
python manage.py export_battles --output battles.parquet --modality text --with-conversations
python manage.py export_battles --format jsonl > battles.jsonl
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.errors import ArenaError
from voting import export
from voting.progress import ProgressBar

if TYPE_CHECKING:
    import pyarrow as pa


class Command(BaseCommand):
    help = "Export battles and their votes (JSON lines, CSV or Parquet), streamed with bounded memory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", "-o", help="File to write (default: standard output; required for Parquet)."
        )
        parser.add_argument("--format", choices=export.FORMATS, help="Default: from the output's extension.")
        parser.add_argument("--since", help="Votes cast on or after this date or ISO date-time.")
        parser.add_argument("--until", help="Votes cast on or before this date or ISO date-time.")
        parser.add_argument("--modality", help="Only this modality (text, image, 3d).")
        parser.add_argument("--model", help="Only battles with this model slug on either side.")
        parser.add_argument("--counted-only", action="store_true", help="Leave out votes that do not count.")
        parser.add_argument("--with-conversations", action="store_true", help="Include both conversations.")
        parser.add_argument(
            "--with-files",
            action="store_true",
            help="Image and 3D battles: describe each side's output file in the rows (output_a, output_b), "
            "and copy the files into files/ beside --output.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on standard error.")

    def handle(self, *args: Any, **options: Any) -> None:
        fmt = options["format"] or _format_from(options["output"])
        try:
            spec = export.export_filter_clean(
                {
                    "since": options["since"] or "",
                    "until": options["until"] or "",
                    "modality": options["modality"] or "",
                    "model": options["model"] or "",
                    "counted_only": "1" if options["counted_only"] else "",
                    "with_conversations": "1" if options["with_conversations"] else "",
                    "with_files": "1" if options["with_files"] else "",
                }
            )
        except ArenaError as exc:
            raise CommandError(exc.message) from None
        if spec.with_files and not options["output"]:
            raise CommandError("--with-files needs --output: the files are copied beside it.")
        # The bar draws on the raw stream: OutputWrapper would end every redraw with a newline.
        stream = getattr(self.stderr, "_out", sys.stderr)
        total = None if options["no_progress"] else export.export_count(spec)
        bar = None if total is None else ProgressBar(total, stream, label="votes")
        rows = _write(spec, fmt, options["output"], bar)
        if bar:
            bar.close()
        if options["output"]:
            self.stderr.write(f"{rows:,} votes written to {options['output']}")
        if spec.with_files:
            directory = str(Path(options["output"]).resolve().parent)
            copied = export.export_files_copy(spec, directory)
            self.stderr.write(f"{copied:,} output files copied to {Path(directory) / 'files'}")


def _format_from(output: str | None) -> str:
    suffix = Path(output).suffix.lstrip(".").lower() if output else "jsonl"
    suffix = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(suffix, suffix)
    if suffix not in export.FORMATS:
        raise CommandError(
            f"Cannot tell the format from {output!r}; pass --format ({', '.join(export.FORMATS)})."
        )
    return suffix


class _Counter:
    def __init__(self, bar: ProgressBar | None) -> None:
        self.rows, self.bar = 0, bar

    def __call__(self, rows: int) -> None:
        self.rows += rows
        if self.bar:
            self.bar(rows)


def _write(spec: export.ExportFilter, fmt: str, output: str | None, bar: ProgressBar | None) -> int:
    counter = _Counter(bar)
    if output is None:
        if fmt == "parquet":
            raise CommandError("Parquet needs --output: its footer is written last.")
        for chunk in _chunks(spec, fmt, counter):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return counter.rows
    # Written beside the target and renamed at the end: an interrupted export never looks complete.
    partial = f"{output}.part"
    if fmt == "parquet":
        export.parquet_write(spec, partial, progress=counter)
    else:
        with open(partial, "wb") as fh:
            for chunk in _chunks(spec, fmt, counter):
                fh.write(chunk)
    os.replace(partial, output)
    return counter.rows


def _chunks(spec: export.ExportFilter, fmt: str, counter: _Counter) -> Iterator[bytes | pa.Buffer]:
    if fmt == "jsonl":  # the pages' own buffers, written without a copy to bytes
        return export.jsonl_buffers(spec, progress=counter)
    return export.export_chunks(spec, fmt, progress=counter)
