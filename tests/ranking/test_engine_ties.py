"""Davidson's tie model."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine import (
    POINTS_PER_NAT,
    aggregate_pairs,
    davidson_sandwich_covariance,
    fit_davidson,
    leaderboard,
    make_gauge,
)


def _davidson_battles(theta: np.ndarray, nu: float, n: int, rng: np.random.Generator) -> tuple:
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    d = theta[a] - theta[b]
    win, loss, tie = np.exp(d / 2), np.exp(-d / 2), np.full(n, nu)
    total = win + loss + tie
    u = rng.random(n) * total
    y = np.where(u < win, 1.0, np.where(u < win + loss, 0.0, 0.5))
    return a, b, y


def test_davidson_recovers_strengths_and_tie_propensity_from_its_own_model() -> None:
    rng = np.random.default_rng(51)
    theta = np.array([-0.8, -0.2, 0.0, 0.5, 1.0])
    a, b, y = _davidson_battles(theta, 0.6, 60_000, rng)
    counts = aggregate_pairs(a, b, y, 5)
    fit = fit_davidson(counts, np.zeros(5, dtype=bool))
    gauge = make_gauge(counts.battles_per_model(), np.zeros(5, dtype=bool), mode="mean")
    cov = gauge.covariance(davidson_sandwich_covariance(counts, fit))
    se = np.sqrt(np.diag(cov))
    assert np.all(np.abs(gauge.center(fit.theta) - (theta - theta.mean())) < 4 * se[:5])
    assert fit.nu == pytest.approx(0.6, abs=4 * se[5] * 0.6)


def test_davidson_sandwich_agrees_with_the_model_based_covariance_when_the_model_is_right() -> None:
    rng = np.random.default_rng(52)
    a, b, y = _davidson_battles(np.array([0.0, 0.3, -0.4, 0.9]), 1.0, 40_000, rng)
    counts = aggregate_pairs(a, b, y, 4)
    fit = fit_davidson(counts, np.zeros(4, dtype=bool))
    gauge = make_gauge(counts.battles_per_model(), np.zeros(4, dtype=bool), mode="mean")
    sandwich = np.diag(gauge.covariance(davidson_sandwich_covariance(counts, fit)))
    model = np.diag(gauge.covariance(np.linalg.inv(fit.hessian)))
    assert np.allclose(sandwich, model, rtol=0.1)


def test_leaderboard_with_the_tie_model_reports_nu_and_keeps_the_bradley_terry_scale() -> None:
    rng = np.random.default_rng(53)
    theta = np.array([0.0, 0.4, 0.8])
    a, b, y = _davidson_battles(theta, 0.5, 30_000, rng)
    board = leaderboard(a, b, y, ["x", "y", "z"], tie_model="davidson", gauge="mean")
    rows = board.by_model()
    assert board.tie_nu == pytest.approx(0.5, rel=0.1)
    assert rows["z"].rating - rows["x"].rating == pytest.approx(0.8 * POINTS_PER_NAT, abs=15.0)


def test_tie_model_refuses_data_without_ties() -> None:
    a = np.array([0, 1, 0, 1])
    b = np.array([1, 0, 1, 0])
    with pytest.raises(ValueError, match="at least one tie"):
        leaderboard(a, b, np.array([1.0, 1.0, 0.0, 1.0]), ["p", "q"], tie_model="davidson", min_battles=1)
