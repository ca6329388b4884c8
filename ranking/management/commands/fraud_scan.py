"""Scan a public battle dump for manipulated votes and print the flagged judges as JSON.

    python manage.py fraud_scan battles.jsonl [--indent]

Output: {"flagged_judges": [{"judge", "reasons", "votes"}], "excluded_question_ids": [...]}; the
statistics live in ranking.engine.fraud (no database is touched).
"""

from __future__ import annotations

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ranking.engine.dump import DumpError
from ranking.engine.fraud_dump import fraud_scan_dump, read_battle_records, votes_from_records


class Command(BaseCommand):
    help = "Flag suspicious judges in a public-format battle dump (JSON array or JSON lines); prints JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="battle dump: JSON array or JSON lines with judge ids")
        parser.add_argument("--indent", action="store_true", help="pretty-print the JSON")

    def handle(self, *args: object, file: str, indent: bool, **options: object) -> None:
        try:
            dump = votes_from_records(read_battle_records(file))
        except DumpError as exc:
            raise CommandError(f"{file}: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        result = fraud_scan_dump(dump)
        option = orjson.OPT_INDENT_2 if indent else 0
        self.stdout.write(orjson.dumps(result, option=option).decode())
