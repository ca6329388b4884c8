"""Leaderboards in the site: from counted votes (through the pair tallies) to stored snapshots.

Only counted votes reach a board. The plain board reads PairTally rows (a few per model pair, kept
current by every vote), so a recompute costs the same at a thousand votes or a million. The
style-controlled board needs each battle's style features and reads the votes themselves.

A snapshot holds every model with counted votes, unreleased ones included (their votes shape everyone's
ratings), each row with its model's id; what the public reads of it is filtered by ranking.publication.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from arena.models import ModelEntry
from ranking import engine
from ranking.models import LeaderboardSnapshot, PairTally
from voting.models import Vote
from workers.events import group_publish

logger = logging.getLogger(__name__)

_OUTCOME = {Vote.Choice.A: 1.0, Vote.Choice.B: 0.0, Vote.Choice.TIE: 0.5, Vote.Choice.BOTH_BAD: 0.5}


def leaderboard_group(modality: str) -> str:
    return f"leaderboard-{modality}"


def _tally_counts(modality: str, category: str) -> tuple[engine.PairCounts, list[int]]:
    rows = list(
        PairTally.objects.filter(modality=modality, category=category).values_list(
            "model_lo_id", "model_hi_id", "lo_won", "hi_won", "ties"
        )
    )
    rows = [r for r in rows if r[2] + r[3] + r[4] > 0]
    ids = sorted({r[0] for r in rows} | {r[1] for r in rows})
    index = {model_id: i for i, model_id in enumerate(ids)}
    lo = np.array([index[r[0]] for r in rows], dtype=np.intp)
    hi = np.array([index[r[1]] for r in rows], dtype=np.intp)
    counts = np.array([r[2:] for r in rows], dtype=np.int64).reshape(-1, 3)
    # One vote weighs 1, so the summed weights and squared weights equal the counts.
    weights = counts.astype(np.float64)
    return engine.PairCounts(len(ids), lo, hi, counts, weights, weights.copy()), ids


def _style_arrays(
    modality: str, category: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    votes = Vote.objects.filter(counted=True, battle__modality=modality).values_list(
        "choice", "battle__model_a_id", "battle__model_b_id", "conv_metadata", "categories"
    )
    rows = [v for v in votes.iterator(chunk_size=20_000) if not category or category in v[4]]
    ids = sorted({v[1] for v in rows} | {v[2] for v in rows})
    index = {model_id: i for i, model_id in enumerate(ids)}
    a = np.array([index[v[1]] for v in rows], dtype=np.intp)
    b = np.array([index[v[2]] for v in rows], dtype=np.intp)
    y = np.array([_OUTCOME[v[0]] for v in rows], dtype=np.float64)
    features = np.array([engine.style_features_from_metadata(v[3] or {}) for v in rows], dtype=np.float64)
    return a, b, y, features.reshape(-1, len(engine.STYLE_FEATURES)), ids


def _pair_matrices(counts: engine.PairCounts) -> tuple[np.ndarray, np.ndarray]:
    """Battles per pair and the row model's win rate against the column model (ties count half)."""
    n = counts.counts.sum(axis=1).astype(np.float64)
    battles = np.zeros((counts.n_models, counts.n_models))
    wins = np.zeros_like(battles)
    battles[counts.lo, counts.hi] = battles[counts.hi, counts.lo] = n
    lo_score = counts.counts @ np.array([1.0, 0.0, 0.5])
    wins[counts.lo, counts.hi] = lo_score
    wins[counts.hi, counts.lo] = n - lo_score
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(battles > 0, wins / battles, np.nan)
    return battles, rate


def _snapshot_data(
    board: engine.Leaderboard, ids: list[int], counts: engine.PairCounts | None
) -> dict[str, Any]:
    models = ModelEntry.objects.in_bulk(ids)
    by_slug = {m.slug: m for m in models.values()}
    rows = []
    for row in board.rows:
        model = by_slug[row.model]
        rows.append(
            {
                # Never shown: read-time filtering knows the model by it (ranking.publication).
                "model_id": model.id,
                "slug": model.slug,
                "name": model.display_name,
                "organization": model.organization,
                "license": model.license,
                "demo": model.is_demo,
                "rating": round(row.rating, 2),
                "lower": round(row.lower, 2),
                "upper": round(row.upper, 2),
                "rank_ub": row.rank_ub,
                "battles": row.battles,
                "win_rate": round(row.win_rate, 4),
                "provisional": row.provisional,
            }
        )
    data: dict[str, Any] = {
        "models": rows,
        "style_coefficients": {k: round(v, 4) for k, v in board.style_coefficients.items()},
        "ci": board.ci,
        "n_battles": board.n_battles,
    }
    if counts is not None:
        battles, rate = _pair_matrices(counts)
        order = [ids.index(models_id) for models_id in (by_slug[r["slug"]].id for r in rows)]
        data["pairs"] = {
            "models": [r["slug"] for r in rows],
            "battles": battles[np.ix_(order, order)].astype(int).tolist(),
            "win_rate": [
                [None if np.isnan(x) else round(float(x), 4) for x in line]
                for line in rate[np.ix_(order, order)]
            ],
        }
    return data


def leaderboard_compute(
    *, modality: str, category: str = "", style_control: bool = False
) -> LeaderboardSnapshot | None:
    """Fit one board from counted votes and store it as a snapshot. None when the board has no votes."""
    min_battles = settings.ARENA_LEADERBOARD_MIN_BATTLES
    counts = None
    if style_control:
        a, b, y, features, ids = _style_arrays(modality, category)
        if not len(y):
            return None
        names = [
            m.slug for m in sorted(ModelEntry.objects.in_bulk(ids).values(), key=lambda m: ids.index(m.id))
        ]
        board = engine.leaderboard(a, b, y, names, style_features=features, min_battles=min_battles)
    else:
        counts, ids = _tally_counts(modality, category)
        if counts.n_pairs == 0:
            return None
        slugs = ModelEntry.objects.in_bulk(ids)
        board = engine.leaderboard_from_counts(counts, [slugs[i].slug for i in ids], min_battles=min_battles)
    snapshot = LeaderboardSnapshot.objects.create(
        modality=modality,
        category=category,
        style_control=style_control,
        published=settings.ARENA_LEADERBOARD_AUTO_PUBLISH,
        n_votes=board.n_battles,
        data=_snapshot_data(board, ids, counts),
    )
    event = {"type": "snapshot", "modality": modality, "category": category, "style_control": style_control}
    transaction.on_commit(
        lambda: group_publish(leaderboard_group(modality), {"type": "leaderboard.event", "event": event})
    )
    return snapshot


def leaderboard_refresh(*, modality: str) -> list[LeaderboardSnapshot]:
    """Recompute every board of a modality: overall, each category with votes, and style control."""
    categories = sorted(
        set(
            PairTally.objects.filter(modality=modality)
            .exclude(category="")
            .values_list("category", flat=True)
        )
    )
    boards = [("", False), ("", True), *((c, False) for c in categories)]
    snapshots = []
    for category, style in boards:
        try:
            snapshot = leaderboard_compute(modality=modality, category=category, style_control=style)
        except ValueError:
            logger.exception("leaderboard %s/%s (style=%s) could not be fitted", modality, category, style)
            continue
        if snapshot is not None:
            snapshots.append(snapshot)
    return snapshots


def leaderboard_refresh_soon(*, modality: str) -> None:
    """Recompute shortly after a vote, at most once per debounce window however many votes arrive."""
    from ranking.tasks import leaderboard_refresh_task

    delay = settings.ARENA_LEADERBOARD_DEBOUNCE
    if cache.add(f"arena:leaderboard-pending:{modality}", 1, timeout=delay):
        transaction.on_commit(
            lambda: leaderboard_refresh_task.apply_async(args=[modality], countdown=delay, queue="ranking")
        )
