"""`python manage.py rank FILE`: a leaderboard from a public battle dump, offline (no database needed).

The command only parses options and prints; reading the dump and all the maths live in `ranking.engine`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ranking import engine


def _anchor(value: str) -> tuple[str, float]:
    """Parse MODEL=RATING (the model name may itself contain '=' characters; the last one splits)."""
    name, sep, rating = value.rpartition("=")
    if not sep or not name:
        raise ValueError(f"--anchor expects MODEL=RATING, got {value!r}")
    try:
        return name, float(rating)
    except ValueError:
        raise ValueError(f"--anchor rating must be a number, got {rating!r}") from None


class Command(BaseCommand):
    help = (
        "Compute a leaderboard (Bradley-Terry with 95% confidence intervals, rank (UB), provisional flags) "
        "from a battle dump in the public format: a JSON array or JSON lines of records with model_a, "
        "model_b, winner and optionally tstamp, category / category_tag and conv_metadata."
    )
    requires_system_checks: list[str] = []  # offline maths on a file: no models, no database

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="battle dump (.json array or .jsonl)")
        parser.add_argument("--ci", choices=["sandwich", "bootstrap"], default="sandwich")
        parser.add_argument("--bootstrap", type=int, default=100, metavar="N", help="bootstrap rounds (100)")
        parser.add_argument(
            "--style-control",
            action="store_true",
            help="control for answer length, headers, lists and bold (needs conv_metadata)",
        )
        parser.add_argument("--anchor", metavar="MODEL=RATING", help="pin one model's rating")
        parser.add_argument(
            "--min-battles",
            type=int,
            default=engine.DEFAULT_MIN_BATTLES,
            metavar="N",
            help=f"models with fewer battles are provisional ({engine.DEFAULT_MIN_BATTLES})",
        )
        parser.add_argument(
            "--hide-provisional", action="store_true", help="leave provisional models out of the output"
        )
        parser.add_argument("--category", metavar="NAME", help="only battles labelled with this category")
        parser.add_argument("--format", choices=["json", "table"], default="table")
        parser.add_argument(
            "--ipw", action="store_true", help="inverse-propensity pair weights 1 / max(pair count, 50)"
        )
        parser.add_argument(
            "--tie-model",
            choices=["half", "davidson"],
            default="half",
            help="a tie is half a win (default) or Davidson's tie model",
        )
        parser.add_argument(
            "--gauge",
            choices=["weighted", "mean"],
            default="weighted",
            help="without --anchor: battle-weighted (default) or plain mean of established models is 1000",
        )
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        parser.add_argument(
            "--exclude-flagged",
            action="store_true",
            help="leave out the battles a fraud scan of the same file excludes (see fraud_scan)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            anchor = _anchor(options["anchor"]) if options["anchor"] else None
            battles = engine.read_battles(path, category=options["category"], style=options["style_control"])
            if options["exclude_flagged"]:
                battles = engine.drop_battles(battles, question_ids=_flagged_question_ids(path))
        except engine.DumpError as exc:
            raise CommandError(f"{path}, {exc}") from None
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if len(battles) == 0:
            where = f" in category {options['category']!r}" if options["category"] else ""
            raise CommandError(f"{path}: no battles{where}")
        if battles.style is not None and not np.isfinite(battles.style).all(axis=1).any():
            raise CommandError(f"{path}: --style-control needs conv_metadata, and no battle has it")
        try:
            board = engine.leaderboard(
                battles.model_a,
                battles.model_b,
                battles.outcome,
                battles.models,
                style_features=battles.style,
                ipw=options["ipw"],
                ci=options["ci"],
                bootstrap_rounds=options["bootstrap"],
                seed=options["seed"],
                anchor=anchor,
                gauge=options["gauge"],
                min_battles=options["min_battles"],
                tie_model=options["tie_model"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        rows = [r for r in board.rows if not (options["hide_provisional"] and r.provisional)]
        if options["format"] == "json":
            payload = board.to_dict()
            shown = {r.model for r in rows}
            payload["models"] = [m for m in payload["models"] if m["model"] in shown]
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self.stdout.write(_table(board, rows))


def _table(board: engine.Leaderboard, rows: list[engine.LeaderboardRow]) -> str:
    """A plain-text table; provisional models are marked with '*'."""
    width = max([len(r.model) for r in rows] + [5])
    lines = [
        f"{'rank':>4}  {'model':<{width}}  {'rating':>7}  {'95% CI':>15}  {'battles':>8}  {'win rate':>8}",
    ]
    for r in rows:
        ci = f"-{r.rating - r.lower:.1f}/+{r.upper - r.rating:.1f}"
        mark = " *" if r.provisional else ""
        lines.append(
            f"{r.rank_ub:>4}  {r.model:<{width}}  {r.rating:>7.1f}  {ci:>15}  {r.battles:>8}  "
            f"{r.win_rate:>8.1%}{mark}"
        )
    if any(r.provisional for r in rows):
        lines.append("* provisional: too few battles, or only wins / only losses so far")
    if board.style_coefficients:
        coefs = ", ".join(f"{k} {v:+.3f}" for k, v in board.style_coefficients.items())
        lines.append(f"style coefficients (log-odds per SD): {coefs}")
    if board.tie_nu is not None:
        lines.append(f"Davidson tie parameter nu = {board.tie_nu:.3f}")
    if board.dropped_battles:
        lines.append(f"{board.dropped_battles} battles without conv_metadata left out of style control")
    lines.append(f"{board.n_battles} battles, {board.ci} intervals")
    return "\n".join(lines)


def _flagged_question_ids(path: str) -> set[str]:
    """The fraud scan reads the whole records (judge, tstamp, seconds to vote), not just the ranked fields."""
    from ranking.engine.fraud_dump import excluded_question_ids, read_battle_records, votes_from_records

    return excluded_question_ids(votes_from_records(read_battle_records(path)))
