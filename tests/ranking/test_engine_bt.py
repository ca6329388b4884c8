"""Bradley-Terry: accuracy against the truth, calibrated intervals, agreement with a direct fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import spearmanr

from ranking.engine import (
    POINTS_PER_NAT,
    aggregate_pairs,
    bootstrap_bt,
    fit_bt,
    fit_bt_batch,
    leaderboard,
    make_gauge,
    provisional_models,
    sandwich_covariance,
)

from .synthetic import simulate


def _true_ratings(theta: np.ndarray, battles: np.ndarray) -> np.ndarray:
    """Truth in the leaderboard's default gauge: battle-weighted mean 1000."""
    c = battles / battles.sum()
    return (theta - theta @ c) * POINTS_PER_NAT + 1000.0


def test_ratings_rank_models_like_the_truth_at_100k_battles() -> None:
    sim = simulate(100, 100_000, np.random.default_rng(11), tie_share=0.1)
    board = leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names)
    rows = board.by_model()
    estimated = [rows[name].rating for name in sim.names]
    rho = spearmanr(sim.theta, estimated).statistic
    assert rho >= 0.98


def test_fit_equals_a_direct_maximisation_of_the_per_battle_likelihood() -> None:
    sim = simulate(8, 3000, np.random.default_rng(3), tie_share=0.15)
    counts = aggregate_pairs(sim.model_a, sim.model_b, sim.outcome, 8)
    fit = fit_bt(counts, np.zeros(8, dtype=bool))

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[sim.model_a] - theta[sim.model_b]
        p = 1.0 / (1.0 + np.exp(-d))
        value = -np.sum(sim.outcome * np.log(p) + (1 - sim.outcome) * np.log(1 - p))
        r = p - sim.outcome
        grad = np.bincount(sim.model_a, r, 8) - np.bincount(sim.model_b, r, 8)
        return float(value), grad

    direct = minimize(nll, np.zeros(8), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15}).x
    ours = (fit.theta - fit.theta.mean()) * POINTS_PER_NAT
    theirs = (direct - direct.mean()) * POINTS_PER_NAT
    assert np.max(np.abs(ours - theirs)) < 1e-3


def test_aggregation_ignores_battle_order_and_which_side_was_left() -> None:
    sim = simulate(6, 2000, np.random.default_rng(5), tie_share=0.2)
    swapped = np.random.default_rng(6).random(2000) < 0.5
    a = np.where(swapped, sim.model_b, sim.model_a)
    b = np.where(swapped, sim.model_a, sim.model_b)
    y = np.where(swapped, 1.0 - sim.outcome, sim.outcome)
    order = np.random.default_rng(7).permutation(2000)
    first = aggregate_pairs(sim.model_a, sim.model_b, sim.outcome, 6)
    second = aggregate_pairs(a[order], b[order], y[order], 6)
    assert np.array_equal(first.counts, second.counts)
    assert np.array_equal(first.lo, second.lo) and np.array_equal(first.hi, second.hi)


def test_sandwich_covariance_equals_the_per_battle_score_formula() -> None:
    sim = simulate(5, 1500, np.random.default_rng(8), tie_share=0.2)
    counts = aggregate_pairs(sim.model_a, sim.model_b, sim.outcome, 5)
    fit = fit_bt(counts, np.zeros(5, dtype=bool))
    cov = sandwich_covariance(counts, fit)
    # Dense reference: per-battle scores x_i (y_i - p_i) with x_i = e_a - e_b.
    x = np.zeros((1500, 5))
    x[np.arange(1500), sim.model_a] = 1.0
    x[np.arange(1500), sim.model_b] = -1.0
    p = 1.0 / (1.0 + np.exp(-(x @ fit.theta)))
    scores = x * (sim.outcome - p)[:, None]
    h = (x * (p * (1 - p))[:, None]).T @ x + fit.penalty
    h_inv = np.linalg.inv(h)
    dense = h_inv @ (scores.T @ scores) @ h_inv
    gauge = make_gauge(counts.battles_per_model(), np.zeros(5, dtype=bool), mode="mean")
    assert np.allclose(gauge.covariance(cov), gauge.covariance(dense), rtol=1e-8, atol=1e-12)


def test_batched_bootstrap_solves_every_round_like_a_separate_fit() -> None:
    sim = simulate(7, 4000, np.random.default_rng(9), tie_share=0.1)
    counts = aggregate_pairs(sim.model_a, sim.model_b, sim.outcome, 7)
    fit = fit_bt(counts, np.zeros(7, dtype=bool))
    rng = np.random.default_rng(10)
    n = counts.pair_weight[None, :] * rng.uniform(0.5, 1.5, (4, counts.n_pairs))
    s = n * (counts.pair_score_lo / counts.pair_weight)[None, :] * rng.uniform(0.9, 1.1, (4, counts.n_pairs))
    s = np.minimum(s, n)
    batched, _ = fit_bt_batch(counts, n, s, fit.penalty)
    warm = np.broadcast_to(fit.theta, (4, 7))
    chord, _ = fit_bt_batch(counts, n, s, fit.penalty, warm, hessian=fit.hessian)
    for r in range(4):
        single, _ = fit_bt_batch(counts, n[r : r + 1], s[r : r + 1], fit.penalty)
        assert np.allclose(batched[r], single[0], atol=1e-9)
        assert np.allclose(chord[r], single[0], atol=1e-9)


@pytest.mark.parametrize("ci", ["sandwich", "bootstrap"])
def test_95_percent_intervals_cover_the_truth_93_to_97_percent_of_the_time(ci: str) -> None:
    rng = np.random.default_rng(2024 if ci == "sandwich" else 2025)
    theta = rng.normal(0.0, 0.6, 10)
    repetitions = 400 if ci == "sandwich" else 200
    covered = 0
    total = 0
    for _ in range(repetitions):
        sim = simulate(10, 4000, rng, theta=theta)
        board = leaderboard(sim.model_a, sim.model_b, sim.outcome, sim.names, ci=ci, seed=rng)
        battles = np.array([board.by_model()[n].battles for n in sim.names])
        truth = _true_ratings(theta, battles)
        rows = board.by_model()
        for name, true_rating in zip(sim.names, truth, strict=True):
            covered += rows[name].lower <= true_rating <= rows[name].upper
            total += 1
    coverage = covered / total
    assert 0.93 <= coverage <= 0.97, coverage


def test_bootstrap_spread_agrees_with_the_sandwich_on_plenty_of_data() -> None:
    sim = simulate(15, 30_000, np.random.default_rng(12), tie_share=0.1)
    counts = aggregate_pairs(sim.model_a, sim.model_b, sim.outcome, 15)
    provisional = provisional_models(counts)
    fit = fit_bt(counts, provisional)
    gauge = make_gauge(counts.battles_per_model(), provisional)
    sandwich_sd = np.sqrt(np.diag(gauge.covariance(sandwich_covariance(counts, fit)))) * POINTS_PER_NAT
    boot_sd = gauge.ratings(bootstrap_bt(counts, fit, rounds=400, seed=1)).std(axis=0)
    assert np.all(np.abs(boot_sd / sandwich_sd - 1.0) < 0.2)


def test_ties_count_as_half_a_win_for_each_side() -> None:
    # A and B always tie; B beats C as often as it loses: everyone is equal.
    a = np.array([0, 0, 1, 1, 2, 2])
    b = np.array([1, 2, 2, 0, 0, 1])
    y = np.array([0.5, 0.5, 1.0, 0.5, 0.5, 1.0])
    board = leaderboard(np.tile(a, 50), np.tile(b, 50), np.tile(y, 50), ["a", "b", "c"], min_battles=1)
    assert all(abs(r.rating - 1000.0) < 1e-6 for r in board.rows)
    assert all(abs(r.win_rate - 0.5) < 1e-12 for r in board.rows)


def test_inverse_propensity_weights_undo_an_oversampled_pair() -> None:
    rng = np.random.default_rng(13)
    theta = np.array([0.0, 0.3, 0.6, 0.9])
    base = simulate(4, 6000, rng, theta=theta, tie_share=0.0)
    # Model 0 meets model 3 twenty times as often, with a context where 0 does better than usual.
    extra = simulate(4, 12_000, rng, theta=np.array([0.9, 0.3, 0.6, 0.9]))
    pick = (np.minimum(extra.model_a, extra.model_b) == 0) & (np.maximum(extra.model_a, extra.model_b) == 3)
    a = np.concatenate([base.model_a, extra.model_a[pick]])
    b = np.concatenate([base.model_b, extra.model_b[pick]])
    y = np.concatenate([base.outcome, extra.outcome[pick]])
    names = ["m0", "m1", "m2", "m3"]
    plain = leaderboard(a, b, y, names).by_model()
    weighted = leaderboard(a, b, y, names, ipw=True).by_model()
    truth_gap = (theta[1] - theta[0]) * POINTS_PER_NAT
    plain_gap = plain["m1"].rating - plain["m0"].rating
    weighted_gap = weighted["m1"].rating - weighted["m0"].rating
    assert abs(weighted_gap - truth_gap) < abs(plain_gap - truth_gap)
