"""Style control: sparse assembly, recovery of known coefficients, and removal of a verbosity advantage."""

from __future__ import annotations

import numpy as np
import pytest

from ranking.engine import (
    fit_style_bt,
    leaderboard,
    make_gauge,
    style_features_from_metadata,
    style_sandwich_covariance,
)

from .synthetic import simulate


def _styled(n_models: int, n_battles: int, beta: np.ndarray, rng: np.random.Generator) -> tuple:
    theta = rng.normal(0.0, 0.7, n_models)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    raw = rng.normal(0.0, 0.3, (n_battles, beta.size))
    z = (raw - raw.mean(0)) / raw.std(0)
    p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b] + z @ beta)))
    y = (rng.random(n_battles) < p).astype(float)
    return theta, a, b, y, raw


def test_sparse_gradient_hessian_and_sandwich_equal_the_dense_design_matrix_versions() -> None:
    rng = np.random.default_rng(41)
    beta = np.array([0.5, -0.2])
    _, a, b, y, raw = _styled(6, 1200, beta, rng)
    fit = fit_style_bt(a, b, y, raw, 6, style_l2=2.0, min_battles=1)
    z = (raw - fit.feature_mean) / fit.feature_std
    x = np.zeros((1200, 8))
    x[np.arange(1200), a] += 1.0
    x[np.arange(1200), b] -= 1.0
    x[:, 6:] = z
    params = np.concatenate([fit.theta, fit.beta])
    p = 1.0 / (1.0 + np.exp(-(x @ params)))
    penalty = np.zeros((8, 8))
    penalty[:6, :6] = fit.penalty
    penalty[6:, 6:] = 2.0 * np.eye(2)
    grad = x.T @ (p - y) + penalty @ params
    assert np.max(np.abs(grad)) < 1e-7  # the fit is at the optimum of the dense objective
    hess = (x * (p * (1 - p))[:, None]).T @ x + penalty
    assert np.allclose(fit.hessian, hess, rtol=1e-10, atol=1e-8)
    scores = x * (p - y)[:, None]
    centred = scores - scores.mean(axis=0)
    h_inv = np.linalg.inv(hess)
    dense = h_inv @ (centred.T @ centred) @ h_inv
    assert np.allclose(style_sandwich_covariance(a, b, y, raw, fit), dense, rtol=1e-7, atol=1e-12)


def test_style_coefficients_are_recovered_to_within_their_standard_errors() -> None:
    rng = np.random.default_rng(42)
    beta = np.array([0.4, 0.1, -0.15, 0.0])
    _, a, b, y, raw = _styled(10, 40_000, beta, rng)
    board = leaderboard(a, b, y, [f"m{i}" for i in range(10)], style_features=raw)
    for name, true in zip(["length", "headers", "lists", "bold"], beta, strict=True):
        lo, hi = board.style_intervals[name]
        standard_error = (hi - lo) / (2 * 1.96)
        assert abs(board.style_coefficients[name] - true) < 4 * standard_error, (name, lo, hi)
        assert 0.01 < standard_error < 0.02  # ~1 / sqrt(0.2 * 40k battles)


def test_style_control_removes_the_advantage_of_a_model_that_only_writes_longer_answers() -> None:
    rng = np.random.default_rng(43)
    sim = simulate(6, 30_000, rng, theta=np.zeros(6))
    verbose = 5
    # Model 5 writes ~3x longer answers; voters prefer longer answers (0.6 log-odds per SD of the contrast).
    tokens_a = rng.integers(200, 400, sim.outcome.size) * np.where(sim.model_a == verbose, 3, 1)
    tokens_b = rng.integers(200, 400, sim.outcome.size) * np.where(sim.model_b == verbose, 3, 1)
    length = (tokens_a - tokens_b) / (tokens_a + tokens_b + 1.0)
    z = (length - length.mean()) / length.std()
    p = 1.0 / (1.0 + np.exp(-0.6 * z))
    y = (rng.random(sim.outcome.size) < p).astype(float)
    features = np.column_stack([length, np.zeros((length.size, 3))])
    plain = leaderboard(sim.model_a, sim.model_b, y, sim.names).by_model()
    styled = leaderboard(sim.model_a, sim.model_b, y, sim.names, style_features=features).by_model()
    name = sim.names[verbose]
    assert plain[name].rating > 1050.0 and plain[name].rank_ub == 1
    assert abs(styled[name].rating - 1000.0) < 15.0
    assert styled[name].lower < 1000.0 < styled[name].upper


def test_battles_without_style_metadata_are_left_out_and_counted() -> None:
    rng = np.random.default_rng(44)
    _, a, b, y, raw = _styled(5, 3000, np.array([0.3, 0.0, 0.0, 0.0]), rng)
    raw[:100] = np.nan
    board = leaderboard(a, b, y, [f"m{i}" for i in range(5)], style_features=raw)
    assert board.dropped_battles == 100
    assert board.n_battles == 2900


def test_style_contrasts_follow_the_public_metadata_fields() -> None:
    meta = {
        "sum_assistant_a_tokens": 300,
        "sum_assistant_b_tokens": 100,
        "header_count_a": {"h1": 1, "h2": 2, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
        "header_count_b": {"h1": 0, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0},
        "list_count_a": {"ordered": 1, "unordered": 1},
        "list_count_b": {"ordered": 0, "unordered": 2},
        "bold_count_a": {"**": 0, "__": 0},
        "bold_count_b": {"**": 3, "__": 1},
    }
    assert style_features_from_metadata(meta) == pytest.approx((200 / 401, 3 / 4, 0.0, -4 / 5))
    assert all(np.isnan(style_features_from_metadata({})))  # not recorded: left out of style control
    with pytest.raises(KeyError):
        style_features_from_metadata({"sum_assistant_a_tokens": 3})


def test_style_fit_is_gauge_free_like_plain_bradley_terry() -> None:
    rng = np.random.default_rng(45)
    _, a, b, y, raw = _styled(5, 4000, np.array([0.3, 0.1, 0.0, 0.0]), rng)
    fit = fit_style_bt(a, b, y, raw, 5)
    cov = style_sandwich_covariance(a, b, y, raw, fit)
    gauge = make_gauge(np.ones(5, dtype=np.int64), np.zeros(5, dtype=bool), mode="mean")
    gauged = gauge.covariance(cov)
    # Under the mean gauge the ratings' covariance has the all-ones vector in its null space.
    assert np.allclose(gauged[:5, :5] @ np.ones(5), 0.0, atol=1e-12)
