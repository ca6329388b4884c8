"""Import a public battle dump (JSON array or JSON lines) into the database.

    python manage.py import_battles clean_battle_20240814_public.json

Bad records are listed with their line numbers and skipped; every good record is imported. Running it again
skips the question_ids already here. See voting/importer.py for what is created.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from voting.importer import battles_import
from voting.progress import ProgressBar

_ERRORS_SHOWN = 200


class Command(BaseCommand):
    help = "Import battles from a public dump (JSON array or JSON lines); idempotent on question_id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--no-progress", action="store_true", help="No progress line on standard error.")
        parser.add_argument(
            "--refresh", action="store_true", help="Recompute the touched leaderboards when done."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        stream = getattr(self.stderr, "_out", sys.stderr)  # raw: OutputWrapper adds a newline per write
        bar = None if options["no_progress"] else ProgressBar(None, stream, label="records")
        report = battles_import(path, progress=bar)
        if bar:
            bar.close()
        for location, message in report.errors[:_ERRORS_SHOWN]:
            self.stderr.write(f"{path.name}: {location}: {message}")
        if len(report.errors) > _ERRORS_SHOWN:
            self.stderr.write(f"... and {len(report.errors) - _ERRORS_SHOWN} more bad records")
        if report.models_created:
            self.stdout.write(
                f'Created {len(report.models_created)} model(s), inactive with backend "imported": '
                + ", ".join(report.models_created[:20])
                + (" ..." if len(report.models_created) > 20 else "")
            )
        self.stdout.write(
            f"Imported {report.imported:,} battles; skipped {report.skipped_existing:,} already present; "
            f"{len(report.errors):,} bad records."
        )
        if options["refresh"]:
            from ranking.services import leaderboard_refresh

            for modality in sorted(report.modalities):
                leaderboard_refresh(modality=modality)
