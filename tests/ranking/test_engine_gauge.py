"""The gauge and provisional models: newcomers must not move anyone else's rating."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine import aggregate_pairs, leaderboard, provisional_models

from .synthetic import simulate


def _with_newcomer(wins: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Boards for 20 established models, without and with a 21st model that won all of its `wins` battles."""
    sim = simulate(20, 20_000, rng, tie_share=0.1)
    names = [*sim.names, "newcomer"]
    before = leaderboard(sim.model_a, sim.model_b, sim.outcome, names).by_model()
    opponents = rng.integers(0, 20, wins)
    a = np.concatenate([sim.model_a, np.full(wins, 20)])
    b = np.concatenate([sim.model_b, opponents])
    y = np.concatenate([sim.outcome, np.ones(wins)])
    after = leaderboard(a, b, y, names).by_model()
    return before, after


@pytest.mark.parametrize("wins", [3, 40])
def test_three_battle_unbeaten_model_moves_no_other_rating_by_more_than_one_point(wins: int) -> None:
    before, after = _with_newcomer(wins, np.random.default_rng(21))
    shifts = [abs(after[name].rating - before[name].rating) for name in before]
    assert max(shifts) <= 1.0
    assert all(after[name].rank_ub == before[name].rank_ub for name in before)
    newcomer = after["newcomer"]
    assert newcomer.provisional
    assert np.isfinite(newcomer.rating) and newcomer.rating > 1000.0
    assert np.isfinite(newcomer.lower) and np.isfinite(newcomer.upper)


def test_unbeaten_model_is_provisional_even_with_many_battles() -> None:
    # Model 3 beat everyone 100 times: its maximum-likelihood rating is infinite.
    a = np.array([3] * 300 + [0, 1, 2] * 200)
    b = np.array([0, 1, 2] * 100 + [1, 2, 0] * 200)
    y = np.array([1.0] * 300 + [1.0, 1.0, 0.5] * 200)
    counts = aggregate_pairs(a, b, y, 4)
    assert provisional_models(counts, min_battles=10).tolist() == [False, False, False, True]


def test_models_below_the_battle_threshold_are_provisional_and_say_so() -> None:
    sim = simulate(6, 3000, np.random.default_rng(22))
    keep = ~((sim.model_a == 5) | (sim.model_b == 5))
    keep[np.flatnonzero(~keep)[:12]] = True  # model 5 keeps only 12 battles
    board = leaderboard(sim.model_a[keep], sim.model_b[keep], sim.outcome[keep], sim.names, min_battles=50)
    rows = board.by_model()
    assert rows["model-005"].provisional and rows["model-005"].battles == 12
    assert not any(rows[n].provisional for n in sim.names[:5])


def test_battle_weighted_mean_of_established_models_is_the_offset() -> None:
    sim = simulate(8, 5000, np.random.default_rng(23))
    board = leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names, offset=1200.0)
    ratings = np.array([r.rating for r in board.rows])
    battles = np.array([r.battles for r in board.rows])
    assert np.average(ratings, weights=battles) == pytest.approx(1200.0, abs=1e-9)


def test_anchor_pins_the_reference_model_and_keeps_every_difference() -> None:
    sim = simulate(8, 5000, np.random.default_rng(24))
    free = leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names).by_model()
    pinned = leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names, anchor=("model-002", 1114.0))
    rows = pinned.by_model()
    assert rows["model-002"].rating == pytest.approx(1114.0)
    # The anchor is the reference: its own interval has no width, the others measure distance from it.
    assert rows["model-002"].upper - rows["model-002"].lower == pytest.approx(0.0, abs=1e-9)
    shift = rows["model-000"].rating - free["model-000"].rating
    for name in sim.names:
        assert rows[name].rating - free[name].rating == pytest.approx(shift, abs=1e-9)


def test_rank_ub_counts_only_models_that_are_surely_better() -> None:
    sim = simulate(12, 20_000, np.random.default_rng(25), spread=1.5)
    board = leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names)
    for row in board.rows:
        surely_better = sum(other.lower > row.upper for other in board.rows)
        assert row.rank_ub == 1 + surely_better
    assert board.rows[0].rank_ub == 1


def test_unknown_anchor_is_refused_with_its_name() -> None:
    sim = simulate(3, 300, np.random.default_rng(26))
    with pytest.raises(ValueError, match="no-such-model"):
        leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names, anchor=("no-such-model", 1000.0))
