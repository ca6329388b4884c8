"""Export leaderboard snapshots as JSON or CSV.

python manage.py export_leaderboard --output boards.json            # every public board
python manage.py export_leaderboard --modality text --format csv    # to standard output
python manage.py export_leaderboard --modality text --history       # every snapshot of the overall text board

Unreleased models are left out (as on the site) unless --with-unreleased is given (a file for staff only).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.models import Modality
from ranking import export
from ranking.publication import board_snapshots


class Command(BaseCommand):
    help = "Export the public leaderboards (or one board's history) as JSON or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")
        parser.add_argument(
            "--format", choices=("json", "csv"), help="Default: from the output's extension, else json."
        )
        parser.add_argument("--modality", choices=Modality.values)
        parser.add_argument("--category", default="", help="With --history: the category board.")
        parser.add_argument("--style-control", action="store_true", help="With --history: the style board.")
        parser.add_argument(
            "--history",
            action="store_true",
            help="Every snapshot of one board (needs --modality), newest first.",
        )
        parser.add_argument(
            "--with-unreleased",
            action="store_true",
            help="Keep the rows of unreleased models (not for publication: it names them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        output = options["output"]
        fmt = options["format"] or (Path(output).suffix.lstrip(".").lower() if output else "json")
        if fmt not in ("json", "csv"):
            raise CommandError(f"Unknown format {fmt!r}; use --format json or csv.")
        if options["history"]:
            if not options["modality"]:
                raise CommandError("--history needs --modality.")
            snapshots = list(
                board_snapshots(
                    modality=options["modality"],
                    category=options["category"],
                    style_control=options["style_control"],
                )
            )
        else:
            snapshots = export.public_snapshots(modality=options["modality"])
        write = export.snapshots_json if fmt == "json" else export.snapshots_csv
        data = write(snapshots, with_unreleased=options["with_unreleased"])
        if output:
            Path(output).write_bytes(data)
            self.stderr.write(f"{len(snapshots)} snapshot(s) written to {output}")
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
