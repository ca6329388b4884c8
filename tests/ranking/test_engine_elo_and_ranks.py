"""Online Elo and rank (UB)."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine import online_elo, rank_ub


def test_first_elo_win_between_newcomers_moves_each_by_half_of_k() -> None:
    ratings = online_elo([0], [1], [1.0], 2)
    assert ratings.tolist() == pytest.approx([1002.0, 998.0])


def test_elo_tie_pulls_the_favourite_down_a_little() -> None:
    ratings = online_elo([0, 0], [1, 1], [1.0, 0.5], 2)
    expected = 1.0 / (1.0 + 10 ** ((998.0 - 1002.0) / 400.0))
    assert ratings[0] == pytest.approx(1002.0 + 4.0 * (0.5 - expected))
    assert ratings.sum() == pytest.approx(2000.0)


def test_elo_follows_timestamps_not_input_order() -> None:
    rng = np.random.default_rng(31)
    a = rng.integers(0, 5, 400)
    b = (a + rng.integers(1, 5, 400)) % 5
    y = rng.choice([0.0, 0.5, 1.0], 400)
    ts = np.arange(400, dtype=float)
    order = rng.permutation(400)
    in_order = online_elo(a, b, y, 5)
    shuffled = online_elo(a[order], b[order], y[order], 5, tstamp=ts[order])
    assert np.allclose(in_order, shuffled)


def test_elo_uses_k_4_base_10_scale_400_and_initial_1000_by_default() -> None:
    ratings = online_elo([0, 0, 0], [1, 1, 1], [1.0, 1.0, 1.0], 2)
    r0, r1 = 1000.0, 1000.0
    for _ in range(3):
        e = 1.0 / (1.0 + 10 ** ((r1 - r0) / 400.0))
        r0, r1 = r0 + 4.0 * (1.0 - e), r1 - 4.0 * (1.0 - e)
    assert ratings.tolist() == pytest.approx([r0, r1])


def test_rank_ub_is_one_plus_models_whose_lower_bound_beats_my_upper_bound() -> None:
    lower = np.array([1100.0, 1090.0, 1000.0, 950.0])
    upper = np.array([1120.0, 1110.0, 1095.0, 980.0])
    # Model 2's upper bound (1095) is below model 0's lower bound (1100) only; model 3 is below all three.
    assert rank_ub(lower, upper).tolist() == [1, 1, 2, 4]


def test_rank_ub_shares_rank_one_when_all_intervals_overlap() -> None:
    assert rank_ub([1.0, 2.0, 3.0], [10.0, 11.0, 12.0]).tolist() == [1, 1, 1]
