"""Thin the stored leaderboard snapshots now, as the periodic task does (ranking.retention says what is kept).

    python manage.py snapshot_retention [--dry-run] [--boards]
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from ranking.retention import snapshot_retention


class Command(BaseCommand):
    help = (
        "Delete leaderboard snapshots the retention policy does not keep (every frozen, staff-published and "
        "latest snapshot stays; the rest is thinned to one per hour for a day, one per day before)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
        parser.add_argument("--boards", action="store_true", help="one line per board: kept and deleted")

    def handle(self, *args: object, dry_run: bool, boards: bool, **options: object) -> None:
        result = snapshot_retention(dry_run=dry_run)
        if boards:
            for board, (kept, deleted) in result.boards.items():
                self.stdout.write(f"{board}: {kept} kept, {deleted} {'to delete' if dry_run else 'deleted'}")
        self.stdout.write(result.line())
