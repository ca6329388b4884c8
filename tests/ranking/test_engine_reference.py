"""Agreement with LMArena's reference implementation (arena-rank 0.1.1) up to the gauge.

The reference file is produced by benchmarks/arena_rank_reference.py in a separate environment (arena-rank
pins jax and an older numpy); it holds the synthetic inputs (aggregated cells, style rows) and arena-rank's
outputs.
arena-rank pins the plain mean of all ratings at 1000, which is our gauge="mean".
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ranking.engine import leaderboard

REFERENCE = Path(__file__).parent / "data" / "arena_rank_reference.json"


@cache
def _reference() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())


def _battles() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    cells = _reference()["cells"]
    names = sorted({c[0] for c in cells} | {c[1] for c in cells})
    index = {n: i for i, n in enumerate(names)}
    repeat = [c[3] for c in cells]
    a = np.repeat([index[c[0]] for c in cells], repeat)
    b = np.repeat([index[c[1]] for c in cells], repeat)
    y = np.repeat([c[2] for c in cells], repeat)
    return a, b, y, names


def _compare(reference: dict[str, Any], board: Any) -> tuple[float, np.ndarray]:
    """(max |rating difference| after removing the mean difference, our CI width / theirs per model)."""
    rows = board.by_model()
    ours = np.array([rows[m].rating for m in reference["models"]])
    diff = ours - np.array(reference["rating"])
    width = np.array([rows[m].upper - rows[m].lower for m in reference["models"]])
    their_width = np.array(reference["upper"]) - np.array(reference["lower"])
    return float(np.max(np.abs(diff - diff.mean()))), width / their_width


def test_bradley_terry_ratings_and_sandwich_intervals_match_arena_rank() -> None:
    a, b, y, names = _battles()
    gap, width_ratio = _compare(_reference()["bt_sandwich"], leaderboard(a, b, y, names, gauge="mean"))
    assert gap < 0.01
    assert np.all(np.abs(width_ratio - 1.0) < 0.005)


def test_ratings_match_arena_rank_in_our_default_battle_weighted_gauge_too() -> None:
    a, b, y, names = _battles()
    gap, width_ratio = _compare(_reference()["bt_sandwich"], leaderboard(a, b, y, names))
    assert gap < 0.01  # only the constant differs; widths move slightly with the gauge
    assert np.all(np.abs(width_ratio - 1.0) < 0.05)


def test_inverse_propensity_weighted_ratings_match_arena_rank_reweighted() -> None:
    a, b, y, names = _battles()
    board = leaderboard(a, b, y, names, gauge="mean", ipw=True)
    gap, width_ratio = _compare(_reference()["bt_reweighted_sandwich"], board)
    assert gap < 0.01
    assert np.all(np.abs(width_ratio - 1.0) < 0.005)


def test_bootstrap_intervals_are_as_wide_as_arena_ranks_within_resampling_noise() -> None:
    a, b, y, names = _battles()
    board = leaderboard(a, b, y, names, gauge="mean", ci="bootstrap", bootstrap_rounds=100, seed=3)
    gap, width_ratio = _compare(_reference()["bt_bootstrap"], board)
    assert gap < 0.01  # point estimates are the full-data fit in both
    # 100-round percentile bounds are noisy (and ours use the p(B+1) convention, slightly wider).
    assert np.all((width_ratio > 0.7) & (width_ratio < 1.45))
    assert 0.9 < np.mean(width_ratio) < 1.2


def test_style_control_matches_arena_rank_when_given_its_penalty() -> None:
    ref = _reference()
    rows = ref["style_rows"]
    _, _, _, names = _battles()
    index = {n: i for i, n in enumerate(names)}
    a = np.array([index[m] for m in rows["model_a"]])
    b = np.array([index[m] for m in rows["model_b"]])
    y = np.array(rows["outcome"])
    features = np.array(rows["features"])
    # arena-rank penalises reg/2 |beta|^2 next to the *mean* log-likelihood: our style_l2 = reg * battles.
    style_l2 = ref["style_sandwich"]["reg"] * len(y)
    board = leaderboard(a, b, y, names, gauge="mean", style_features=features, style_l2=style_l2)
    gap, width_ratio = _compare(ref["style_sandwich"], board)
    assert gap < 0.01
    assert np.all(np.abs(width_ratio - 1.0) < 0.01)
    coefficients = [board.style_coefficients[name] for name in rows["feature_names"]]
    assert coefficients == pytest.approx(ref["style_sandwich"]["coefficients"], rel=1e-4, abs=1e-6)
