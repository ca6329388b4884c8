"""Bradley-Terry maximum likelihood on aggregated pairs, sandwich covariance and a batched bootstrap.

The model: P(i beats j) = sigmoid(theta_i - theta_j); a tie or both-bad counts as half a win for each side.
The negative log-likelihood on aggregated pairs is

    f(theta) = - sum_pairs [ s log sigmoid(d) + (n - s) log sigmoid(-d) ] + 1/2 theta^T R theta,
    d = theta_lo - theta_hi

with n the pair's battle weight, s the weighted score of its lower-index model and R from
`gauge.penalty_matrix`. Gradient and Hessian are analytic (the Hessian is a weighted graph Laplacian), so
Newton's method converges in a handful of steps. Bootstrap rounds differ only in (n, s), so all rounds are
solved together as one (rounds x models) batch, warm-started at the full fit and stepped with its Hessian
(Newton-chord: one matrix product per step for all rounds), instead of one process per round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.special import ndtri

from .gauge import DEFAULT_PRIOR_SD, make_gauge, penalty_matrix
from .pairs import CELL_SCORE_LO, PairCounts
from .scale import sigmoid, softplus
from .threads import single_blas_thread

__all__ = [
    "BTFit",
    "bootstrap_bt",
    "fit_bt",
    "fit_bt_batch",
    "model_covariance",
    "sandwich_covariance",
    "z_value",
]

_MAX_ITER = 100
_TOL = 1e-10  # largest Newton step (theta units) at convergence: ~2e-8 rating points
_ARMIJO = 1e-4
_MAX_CHORD = 60


@dataclass(frozen=True)
class BTFit:
    """A fitted Bradley-Terry model (raw theta, before the gauge).

    Attributes:
        theta: raw ratings in natural log-odds units; only differences are meaningful.
        hessian: Hessian of the penalised objective at theta (data Laplacian + penalty R).
        penalty: the penalty matrix R used in the fit.
        provisional: models flagged provisional (see `gauge.provisional_models`).
        iterations: Newton iterations taken.
    """

    theta: NDArray[np.float64]
    hessian: NDArray[np.float64]
    penalty: NDArray[np.float64]
    provisional: NDArray[np.bool_]
    iterations: int


def _incidence(counts: PairCounts) -> csr_matrix:
    """Sparse (models x pairs) matrix with +1 at the lower model and -1 at the higher model of each pair."""
    p = counts.n_pairs
    rows = np.concatenate([counts.lo, counts.hi])
    cols = np.concatenate([np.arange(p), np.arange(p)])
    vals = np.concatenate([np.ones(p), -np.ones(p)])
    return csr_matrix((vals, (rows, cols)), shape=(counts.n_models, p))


def _laplacian(
    lo: NDArray[np.intp], hi: NDArray[np.intp], vals: NDArray[np.float64], n_models: int
) -> NDArray[np.float64]:
    """Weighted graph Laplacians, batched over leading axes of `vals` (shape (..., P) -> (..., M, M))."""
    batch = vals.shape[:-1]
    out = np.zeros((*batch, n_models, n_models))
    out[..., lo, hi] = -vals
    out[..., hi, lo] = -vals
    diag = -out.sum(axis=-1)
    idx = np.arange(n_models)
    out[..., idx, idx] = diag
    return out


def _objective(
    theta: NDArray[np.float64],
    counts: PairCounts,
    n: NDArray[np.float64],
    s: NDArray[np.float64],
    penalty: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Penalised negative log-likelihood for each row of a (rounds, models) batch.

    Uses s log sigmoid(d) + (n - s) log sigmoid(-d) = s d - n softplus(d): one transcendental per pair.
    """
    d = theta[:, counts.lo] - theta[:, counts.hi]
    nll = (n * softplus(d) - s * d).sum(axis=1)
    return nll + 0.5 * np.einsum("rm,mk,rk->r", theta, penalty, theta)


def _gradient(
    theta: NDArray[np.float64],
    counts: PairCounts,
    inc: csr_matrix,
    n: NDArray[np.float64],
    s: NDArray[np.float64],
    penalty: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(gradient, win probabilities) for a (rounds, models) batch."""
    p = sigmoid(theta[:, counts.lo] - theta[:, counts.hi])
    return (inc @ (n * p - s).T).T + theta @ penalty, p


def _chord(
    counts: PairCounts,
    inc: csr_matrix,
    n: NDArray[np.float64],
    s: NDArray[np.float64],
    penalty: NDArray[np.float64],
    theta: NDArray[np.float64],
    hessian_inv: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Newton-chord iterations theta -= g H0^-1 with one shared inverse Hessian, for warm-started batches.

    Bootstrap rounds are small perturbations of the full data, so the full-data Hessian H0 is an excellent
    stand-in for each round's own: the error shrinks by a roughly constant factor per step while each step is
    a single (rounds x M) @ (M x M) product. No per-round factorisation means no batch of small LAPACK calls,
    which are slow and, with threaded BLAS on a busy machine, erratic. Returns (theta, converged per round).
    """
    converged = np.zeros(theta.shape[0], dtype=bool)
    previous = np.full(theta.shape[0], np.inf)
    for _ in range(_MAX_CHORD):
        grad, _ = _gradient(theta, counts, inc, n, s, penalty)
        step = grad @ hessian_inv
        size = np.max(np.abs(step), axis=1)
        # Contracting rounds keep going; a round whose steps stop shrinking is left to full Newton.
        ok = np.isfinite(size) & (size < 0.9 * previous)
        theta = np.where(ok[:, None], theta - step, theta)
        converged = size < _TOL
        previous = np.where(ok, size, 0.0)
        if np.all(converged | ~ok):
            break
    return theta, converged


@single_blas_thread
def fit_bt_batch(
    counts: PairCounts,
    n: NDArray[np.float64],
    s: NDArray[np.float64],
    penalty: NDArray[np.float64],
    theta0: NDArray[np.float64] | None = None,
    *,
    hessian: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], int]:
    """Solve a batch of Bradley-Terry problems sharing the same pairs.

    Damped Newton steps with an Armijo backtracking line search per round. When `hessian` (the Hessian of a
    nearby problem, e.g. the full-data fit for bootstrap rounds) is given, Newton-chord steps with that fixed
    matrix run first and only rounds they do not settle go through full Newton.

    Args:
        counts: the pairs (only `lo`, `hi`, `n_models` are used).
        n, s: per-round pair weights and lower-model scores, shape (rounds, pairs).
        penalty: the matrix R (models x models).
        theta0: starting points, shape (rounds, models); zeros if omitted.
        hessian: optional shared Hessian for the chord phase.

    Returns:
        (theta of shape (rounds, models), Newton iterations taken by the slowest round).
    """
    rounds, m = n.shape[0], counts.n_models
    theta = np.zeros((rounds, m)) if theta0 is None else np.array(theta0, dtype=np.float64)
    inc = _incidence(counts)  # (models x pairs), sparse
    if hessian is not None:
        theta, done = _chord(counts, inc, n, s, penalty, theta, np.linalg.inv(hessian))
        todo = np.flatnonzero(~done)
        if todo.size:
            theta[todo], _ = _newton(counts, inc, n[todo], s[todo], penalty, theta[todo])
        return theta, 0
    return _newton(counts, inc, n, s, penalty, theta)


def _newton(
    counts: PairCounts,
    inc: csr_matrix,
    n: NDArray[np.float64],
    s: NDArray[np.float64],
    penalty: NDArray[np.float64],
    theta: NDArray[np.float64],
) -> tuple[NDArray[np.float64], int]:
    rounds, m = theta.shape
    f = _objective(theta, counts, n, s, penalty)
    for it in range(1, _MAX_ITER + 1):
        grad, p = _gradient(theta, counts, inc, n, s, penalty)
        hess = _laplacian(counts.lo, counts.hi, n * p * (1.0 - p), m) + penalty
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        # Backtracking per round: halve the step where it does not decrease the objective enough.
        slope = -(grad * step).sum(axis=1)
        t = np.ones(rounds)
        active = np.ones(rounds, dtype=bool)
        for _ in range(40):
            trial = theta - t[:, None] * step
            f_trial = _objective(trial, counts, n, s, penalty)
            ok = f_trial <= f + _ARMIJO * t * slope + 1e-12 * np.abs(f)
            active &= ~ok
            if not active.any():
                break
            t = np.where(active, t * 0.5, t)
        theta = theta - t[:, None] * step
        f = _objective(theta, counts, n, s, penalty)
        if np.max(np.abs(t[:, None] * step)) < _TOL:
            return theta, it
    return theta, _MAX_ITER


@single_blas_thread
def fit_bt(
    counts: PairCounts,
    provisional: NDArray[np.bool_],
    *,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    theta0: NDArray[np.float64] | None = None,
) -> BTFit:
    """Fit Bradley-Terry ratings to aggregated pairs.

    Provisional models get the Gaussian prior of `gauge.penalty_matrix`, centred on the battle-weighted mean
    of the established models; established models get their plain maximum-likelihood differences.
    """
    battles = counts.battles_per_model()
    center = make_gauge(battles, provisional).weights
    penalty = penalty_matrix(battles, provisional, center, prior_sd)
    n = counts.pair_weight[None, :]
    s = counts.pair_score_lo[None, :]
    theta, iters = fit_bt_batch(counts, n, s, penalty, None if theta0 is None else theta0[None, :])
    theta = theta[0]
    d = theta[counts.lo] - theta[counts.hi]
    p = sigmoid(d)
    hess = _laplacian(counts.lo, counts.hi, counts.pair_weight * p * (1.0 - p), counts.n_models) + penalty
    return BTFit(theta, hess, penalty, provisional, iters)


@single_blas_thread
def sandwich_covariance(counts: PairCounts, fit: BTFit) -> NDArray[np.float64]:
    """Robust covariance H^-1 G H^-1 of raw theta (apply a `Gauge` to publish it).

    G is the covariance of the per-battle score contributions, accumulated per cell exactly as LMArena's
    arena-rank does: a battle with weight w and outcome y contributes w^2 (y - p)^2 to its pair's Laplacian
    entry. It stays valid when battles are re-weighted (inverse propensity) or the model is misspecified.
    """
    d = fit.theta[counts.lo] - fit.theta[counts.hi]
    p = sigmoid(d)
    resid_sq = np.stack([(1.0 - p) ** 2, p**2, (0.5 - p) ** 2], axis=1)
    g = _laplacian(counts.lo, counts.hi, (counts.weight_sq * resid_sq).sum(axis=1), counts.n_models)
    h_inv = np.linalg.inv(fit.hessian)
    cov = h_inv @ g @ h_inv
    return 0.5 * (cov + cov.T)


@single_blas_thread
def model_covariance(fit: BTFit) -> NDArray[np.float64]:
    """Model-based covariance H^-1 (inverse observed information including the prior).

    Used as a floor for provisional models: the sandwich relies on residuals, and a model that won all of its
    three battles has almost none, which would give it a falsely narrow interval.
    """
    return np.linalg.inv(fit.hessian)


@single_blas_thread
def bootstrap_bt(
    counts: PairCounts,
    fit: BTFit,
    rounds: int = 100,
    seed: int | np.random.Generator | None = 0,
) -> NDArray[np.float64]:
    """Raw theta of `rounds` bootstrap refits, shape (rounds, models), all rounds solved as one batch.

    Each round redraws all cell counts with a single multinomial draw (total = number of battles,
    probabilities = observed cell frequencies); a cell keeps its mean battle weight. Rounds start from the
    full-data fit and share its Hessian (Newton-chord steps, see `fit_bt_batch`).
    """
    rng = np.random.default_rng(seed)
    total = counts.n_battles
    flat = counts.counts.ravel().astype(np.float64)
    draws = rng.multinomial(total, flat / flat.sum(), size=rounds).reshape(rounds, counts.n_pairs, 3)
    unit = np.divide(counts.weight, counts.counts, out=np.zeros_like(counts.weight), where=counts.counts > 0)
    w = draws * unit[None]
    n = w.sum(axis=2)
    s = w @ CELL_SCORE_LO
    theta0 = np.broadcast_to(fit.theta, (rounds, counts.n_models))
    theta, _ = fit_bt_batch(counts, n, s, fit.penalty, theta0, hessian=fit.hessian)
    return theta


def z_value(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level (1.959964 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    return float(ndtri(0.5 + confidence / 2.0))
