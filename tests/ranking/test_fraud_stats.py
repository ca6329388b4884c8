"""The tail probabilities behind the fraud signals are exact (or saddlepoint-accurate) where it matters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from ranking.engine.fraud_stats import (
    binom_two_sided_p,
    poisson_binomial_sf,
    tarone_bonferroni,
    weighted_bernoulli_tails,
)


def brute_force_sf(q: np.ndarray, k: int) -> float:
    total = 0.0
    for bits in itertools.product((0, 1), repeat=q.size):
        if sum(bits) >= k:
            total += float(np.prod([qi if bit else 1 - qi for bit, qi in zip(bits, q, strict=True)]))
    return total


def test_poisson_binomial_tail_matches_enumeration() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(0, 9, 25)
    cell = np.repeat(np.arange(25), sizes)
    q = rng.random(cell.size)
    observed = np.array([rng.integers(0, s + 2) for s in sizes])
    got = poisson_binomial_sf(cell, q, observed, 25)
    want = [
        brute_force_sf(q[cell == c], int(observed[c])) if sizes[c] else float(observed[c] <= 0)
        for c in range(25)
    ]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_poisson_binomial_tail_of_equal_probabilities_is_binomial() -> None:
    cell = np.zeros(300, dtype=np.int64)
    got = poisson_binomial_sf(cell, np.full(300, 0.3), np.array([120]), 1)
    np.testing.assert_allclose(got, stats.binom.sf(119, 300, 0.3), rtol=1e-9)


def test_poisson_binomial_tail_of_large_cells_with_small_counts_matches_a_full_dp() -> None:
    # Cells of hundreds of terms asked about small counts (the DP only tracks counts up to the largest).
    rng = np.random.default_rng(4)
    sizes = rng.integers(0, 300, 25)
    cell = np.repeat(np.arange(25), sizes)
    q = rng.uniform(0.0, 1.0, cell.size) ** 2
    observed = rng.integers(-1, 90, 25)
    got = poisson_binomial_sf(cell, q, observed, 25)
    for c in range(25):
        dist = np.zeros(sizes[c] + 1)
        dist[0] = 1.0
        for p in q[cell == c]:
            dist[1:] = dist[1:] * (1 - p) + dist[:-1] * p
            dist[0] *= 1 - p
        want = 1.0 if observed[c] <= 0 else dist[observed[c] :].sum()
        assert got[c] == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_saddlepoint_tails_match_exact_distribution_far_in_the_tails() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.55, 0.95, 60)
    weight = np.log(p / (1 - p))
    # Exact distribution of the weighted sum by enumeration over a fine lattice (weights rounded to 1e-3).
    lattice = np.rint(weight * 1000).astype(int)
    dist = np.zeros(lattice.sum() + 1)
    dist[0] = 1.0
    for w, pi in zip(lattice, p, strict=True):
        shifted = np.zeros_like(dist)
        shifted[w:] = dist[:-w]
        dist = dist * (1 - pi) + shifted * pi
    values = np.arange(dist.size) / 1000.0
    for quantile in (1e-5, 1e-3, 0.5, 1 - 1e-3):
        x = values[np.searchsorted(np.cumsum(dist), quantile)]
        upper, lower = weighted_bernoulli_tails(
            np.zeros(60, dtype=np.int64), lattice / 1000.0, p, np.array([x]), 1
        )
        exact_lower = dist[values <= x + 1e-9].sum()
        exact_upper = dist[values >= x - 1e-9].sum()
        assert abs(np.log(lower[0] / exact_lower)) < 0.25
        assert abs(np.log(upper[0] / exact_upper)) < 0.25


def test_saddlepoint_extremes_are_exact_products() -> None:
    p = np.array([0.6, 0.7, 0.9])
    weight = np.ones(3)
    upper, lower = weighted_bernoulli_tails(np.zeros(3, dtype=np.int64), weight, p, np.array([3.0]), 1)
    assert np.isclose(upper[0], np.prod(p))
    assert lower[0] == 1.0
    upper, lower = weighted_bernoulli_tails(np.zeros(3, dtype=np.int64), weight, p, np.array([0.0]), 1)
    assert np.isclose(lower[0], np.prod(1 - p))
    assert upper[0] == 1.0


def test_binomial_two_sided_matches_scipy() -> None:
    for k, n in ((0, 10), (3, 10), (5, 10), (17, 20), (40, 40)):
        want = stats.binomtest(k, n, 0.5).pvalue
        assert np.isclose(binom_two_sided_p(np.array([k]), np.array([n]))[0], want)


def test_tarone_counts_only_hypotheses_that_could_reach_significance() -> None:
    # owner 0: one strong cell and many untestable ones (min p 0.5); owner 1: five testable cells.
    min_p = np.array([1e-6] + [0.5] * 30 + [1e-5] * 5)
    owner = np.array([0] * 31 + [1] * 5)
    k = tarone_bonferroni(min_p, owner, 0.01, 3)
    assert k.tolist() == [1.0, 5.0, 1.0]
