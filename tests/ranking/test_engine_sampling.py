"""Information-aware pair sampling."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine import (
    aggregate_pairs,
    fit_bt,
    leaderboard,
    make_gauge,
    pair_probabilities,
    provisional_models,
    sample_pairs,
    sandwich_covariance,
)


def test_pair_probabilities_are_a_distribution_with_a_floor_for_every_pair() -> None:
    ratings = np.array([1000.0, 1010.0, 1200.0, 800.0, 1005.0])
    counts = np.full((5, 5), 100.0)
    probs = pair_probabilities(ratings, pair_counts=counts, floor=0.2)
    iu = np.triu_indices(5, 1)
    assert np.allclose(probs, probs.T)
    assert probs[iu].sum() == pytest.approx(1.0)
    assert np.all(probs[iu] >= 0.2 / 10 - 1e-12)
    assert np.all(np.diag(probs) == 0.0)


def test_close_pairs_are_preferred_over_lopsided_ones_at_equal_counts() -> None:
    ratings = np.array([1000.0, 1005.0, 1400.0])
    probs = pair_probabilities(ratings, pair_counts=np.full((3, 3), 200.0))
    assert probs[0, 1] > probs[0, 2]
    assert probs[0, 1] > probs[1, 2]


def test_a_model_with_few_battles_is_sampled_more_often() -> None:
    ratings = np.full(4, 1000.0)
    counts = np.full((4, 4), 300.0)
    counts[3, :] = counts[:, 3] = 5.0
    probs = pair_probabilities(ratings, pair_counts=counts)
    share = probs.sum(axis=1) / 2.0
    assert share[3] > 0.4 and share[3] == pytest.approx(share.max())


def test_disallowed_pairs_are_never_drawn() -> None:
    allowed = np.ones((4, 4), dtype=bool)
    allowed[0, 1] = allowed[1, 0] = False  # two unreleased models must not meet
    probs = pair_probabilities(np.full(4, 1000.0), pair_counts=np.full((4, 4), 10.0), allowed=allowed)
    assert probs[0, 1] == 0.0
    a, b = sample_pairs(probs, 2000, np.random.default_rng(61))
    assert not np.any(((a == 0) & (b == 1)) | ((a == 1) & (b == 0)))


def test_sampled_pairs_follow_the_probabilities_with_random_sides() -> None:
    probs = pair_probabilities(np.array([1000.0, 1100.0, 1150.0]), pair_counts=np.full((3, 3), 50.0))
    a, b = sample_pairs(probs, 60_000, np.random.default_rng(62))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert np.mean((lo == i) & (hi == j)) == pytest.approx(probs[i, j], abs=0.01)
    assert np.mean(a < b) == pytest.approx(0.5, abs=0.01)


def test_information_aware_sampling_reaches_a_target_interval_width_with_fewer_votes() -> None:
    rng_truth = np.random.default_rng(63)
    theta = rng_truth.normal(0.0, 1.2, 12)
    names = [f"m{i}" for i in range(12)]

    def votes_needed(informed: bool, seed: int) -> int:
        rng = np.random.default_rng(seed)
        a = np.empty(0, dtype=np.intp)
        b = np.empty(0, dtype=np.intp)
        y = np.empty(0)
        probs = np.full((12, 12), 1.0 / 66)
        np.fill_diagonal(probs, 0.0)
        while a.size < 60_000:
            na, nb = sample_pairs(probs, 1000, rng)
            p = 1.0 / (1.0 + np.exp(-(theta[na] - theta[nb])))
            a, b = np.concatenate([a, na]), np.concatenate([b, nb])
            y = np.concatenate([y, (rng.random(1000) < p).astype(float)])
            board = leaderboard(a, b, y, names)
            if max(r.upper - r.lower for r in board.rows) <= 60.0:
                return a.size
            if informed:
                counts = aggregate_pairs(a, b, y, 12)
                prov = provisional_models(counts)
                fit = fit_bt(counts, prov)
                gauge = make_gauge(counts.battles_per_model(), prov)
                cov = gauge.covariance(sandwich_covariance(counts, fit))
                ratings = [board.by_model()[n].rating for n in names]
                probs = pair_probabilities(ratings, covariance=cov)
        return a.size

    uniform = np.mean([votes_needed(False, s) for s in (1, 2)])
    informed = np.mean([votes_needed(True, s) for s in (1, 2)])
    assert informed < 0.9 * uniform
