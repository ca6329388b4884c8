"""Keeping PairTally current: every counted vote adds to its pair's cells, every exclusion takes away.

Tallies are written in the same transaction as the vote change, so they never drift from the votes;
`tally_rebuild` recomputes them from scratch should an operator ever doubt them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db import connection, transaction

from ranking.models import PairTally
from voting.categories import CRITERION_PREFIX
from voting.models import Vote

_UPSERT = """
INSERT INTO ranking_pairtally (modality, category, model_lo_id, model_hi_id, lo_won, hi_won, ties)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (modality, category, model_lo_id, model_hi_id) DO UPDATE SET
    lo_won = ranking_pairtally.lo_won + excluded.lo_won,
    hi_won = ranking_pairtally.hi_won + excluded.hi_won,
    ties = ranking_pairtally.ties + excluded.ties
"""

Key = tuple[str, str, int, int]


def _cells(choice: str, model_a: int, model_b: int) -> tuple[int, int, int, int, int]:
    """(lo, hi, lo_won, hi_won, ties) for one vote."""
    lo, hi = min(model_a, model_b), max(model_a, model_b)
    if choice in (Vote.Choice.TIE, Vote.Choice.BOTH_BAD):
        return lo, hi, 0, 0, 1
    winner = model_a if choice == Vote.Choice.A else model_b
    return lo, hi, int(winner == lo), int(winner == hi), 0


def _apply(totals: dict[Key, list[int]]) -> None:
    rows = [(*key, *cells) for key, cells in totals.items() if any(cells)]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(_UPSERT, rows)


def tally_record(*, votes: Iterable[Vote], sign: int) -> None:
    """Add (sign=+1) or remove (sign=-1) votes from their boards: overall, each of their categories, and one
    board per judged criterion (scored by that criterion's own choice)."""
    totals: dict[Key, list[int]] = {}
    for vote in votes:
        battle = vote.battle
        boards = [(category, vote.choice) for category in ["", *vote.categories]]
        boards += [(CRITERION_PREFIX + key, choice) for key, choice in (vote.criteria or {}).items()]
        for category, choice in boards:
            lo, hi, *cells = _cells(choice, battle.model_a_id, battle.model_b_id)
            acc = totals.setdefault((battle.modality, category, lo, hi), [0, 0, 0])
            for i, value in enumerate(cells):
                acc[i] += sign * value
    _apply(totals)


# PostgreSQL rebuilds in one statement, many times faster than Python. The votes are first summed per pair and
# category combination (a few thousand rows), and only those are expanded per category. Ties and both-bad
# go to `ties`; a decisive vote goes to the side whose model won.
_REBUILD_PG = """
WITH g AS (
    SELECT b.modality, LEAST(b.model_a_id, b.model_b_id) AS lo, GREATEST(b.model_a_id, b.model_b_id) AS hi,
        v.categories,
        SUM(CASE WHEN v.choice IN ('tie', 'both_bad') THEN 0
                 WHEN (v.choice = 'a') = (b.model_a_id < b.model_b_id) THEN 1 ELSE 0 END) AS lo_won,
        SUM(CASE WHEN v.choice IN ('tie', 'both_bad') THEN 0
                 WHEN (v.choice = 'a') = (b.model_a_id < b.model_b_id) THEN 0 ELSE 1 END) AS hi_won,
        SUM(CASE WHEN v.choice IN ('tie', 'both_bad') THEN 1 ELSE 0 END) AS ties
    FROM voting_vote v JOIN arena_battle b ON b.id = v.battle_id
    WHERE v.counted
    GROUP BY 1, 2, 3, 4
)
INSERT INTO ranking_pairtally (modality, category, model_lo_id, model_hi_id, lo_won, hi_won, ties)
SELECT modality, '', lo, hi, SUM(lo_won), SUM(hi_won), SUM(ties) FROM g GROUP BY modality, lo, hi
UNION ALL
SELECT modality, c.category, lo, hi, SUM(lo_won), SUM(hi_won), SUM(ties)
FROM g CROSS JOIN LATERAL jsonb_array_elements_text(g.categories) AS c(category)
GROUP BY modality, c.category, lo, hi
UNION ALL
SELECT b.modality, 'criterion:' || c.key,
    LEAST(b.model_a_id, b.model_b_id), GREATEST(b.model_a_id, b.model_b_id),
    SUM(CASE WHEN c.value IN ('tie', 'both_bad') THEN 0
             WHEN (c.value = 'a') = (b.model_a_id < b.model_b_id) THEN 1 ELSE 0 END),
    SUM(CASE WHEN c.value IN ('tie', 'both_bad') THEN 0
             WHEN (c.value = 'a') = (b.model_a_id < b.model_b_id) THEN 0 ELSE 1 END),
    SUM(CASE WHEN c.value IN ('tie', 'both_bad') THEN 1 ELSE 0 END)
FROM voting_vote v JOIN arena_battle b ON b.id = v.battle_id
CROSS JOIN LATERAL jsonb_each_text(v.criteria) AS c(key, value)
WHERE v.counted
GROUP BY 1, 2, 3, 4
"""


@transaction.atomic
def tally_rebuild() -> int:
    """Recompute every tally from the counted votes. Returns the number of tally rows."""
    PairTally.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_REBUILD_PG)
    else:
        _rebuild_in_python()
    return PairTally.objects.count()


def _rebuild_in_python() -> None:
    """The portable rebuild (SQLite): the same sums as _REBUILD_PG, computed here."""
    totals: Counter[tuple[Key, int]] = Counter()
    votes = Vote.objects.filter(counted=True).values_list(
        "choice", "categories", "criteria", "battle__modality", "battle__model_a_id", "battle__model_b_id"
    )
    for choice, categories, criteria, modality, a, b in votes.iterator(chunk_size=20_000):
        boards = [(category, choice) for category in ["", *categories]]
        boards += [(CRITERION_PREFIX + key, value) for key, value in (criteria or {}).items()]
        for category, board_choice in boards:
            lo, hi, *cells = _cells(board_choice, a, b)
            for i, value in enumerate(cells):
                totals[((modality, category, lo, hi), i)] += value
    grouped: dict[Key, list[int]] = {}
    for (key, i), value in totals.items():
        grouped.setdefault(key, [0, 0, 0])[i] = value
    _apply(grouped)
