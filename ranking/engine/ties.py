"""Davidson's tie model: ties as their own outcome instead of half a win each.

    P(i wins) = e^(d/2) / D,  P(j wins) = e^(-d/2) / D,  P(tie) = nu / D,
    D = e^(d/2) + e^(-d/2) + nu,  d = theta_i - theta_j

Given that a battle was decisive, P(i wins) = sigmoid(d), so ratings stay on the Bradley-Terry scale; nu
measures how tie-prone the arena is (P(tie) between equals = nu / (2 + nu)). Both-bad counts as a tie. The
model is fitted on the same aggregated cells as Bradley-Terry with analytic gradient and Hessian: the Hessian
of -log P is the same for all three outcomes (it is the Hessian of log D), so it only needs each pair's total
weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from .bt import _laplacian
from .gauge import DEFAULT_PRIOR_SD, make_gauge, penalty_matrix
from .newton import newton_minimize
from .pairs import PairCounts
from .threads import single_blas_thread

__all__ = ["TieFit", "bootstrap_davidson", "davidson_sandwich_covariance", "fit_davidson"]


@dataclass(frozen=True)
class TieFit:
    """A fitted Davidson model.

    Attributes:
        theta: raw ratings (natural units, before the gauge).
        log_nu: log of the tie parameter nu.
        hessian: Hessian of the penalised objective over (theta, log_nu).
        penalty: rating penalty matrix R.
        provisional: provisional flags.
        iterations: Newton iterations.
    """

    theta: NDArray[np.float64]
    log_nu: float
    hessian: NDArray[np.float64]
    penalty: NDArray[np.float64]
    provisional: NDArray[np.bool_]
    iterations: int

    @property
    def nu(self) -> float:
        """The tie parameter; P(tie) between two equal models is nu / (2 + nu)."""
        return float(np.exp(self.log_nu))


def _probabilities(
    d: NDArray[np.float64], log_nu: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(log D, P(lo wins), P(hi wins), P(tie)) for each pair, computed stably in log space."""
    stacked = np.stack([d / 2.0, -d / 2.0, np.full_like(d, log_nu)])
    log_d = logsumexp(stacked, axis=0)
    pw, pl, pt = np.exp(stacked - log_d)
    return log_d, pw, pl, pt


def _assemble(
    counts: PairCounts, h_dd: NDArray[np.float64], h_dp: NDArray[np.float64], h_pp: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Map per-pair blocks over (d, log_nu) to the full (models + 1) square matrix."""
    m = counts.n_models
    out = np.zeros((m + 1, m + 1))
    out[:m, :m] = _laplacian(counts.lo, counts.hi, h_dd, m)
    col = np.bincount(counts.lo, h_dp, m) - np.bincount(counts.hi, h_dp, m)
    out[:m, m] = col
    out[m, :m] = col
    out[m, m] = h_pp.sum()
    return out


def _fit(
    counts: PairCounts, weight: NDArray[np.float64], penalty: NDArray[np.float64], x0: NDArray[np.float64]
) -> tuple[NDArray[np.float64], int]:
    m = counts.n_models
    n_w, n_l, n_t = weight[:, 0], weight[:, 1], weight[:, 2]
    n = weight.sum(axis=1)

    def value(x: NDArray[np.float64]) -> float:
        d = x[counts.lo] - x[counts.hi]
        log_d = _probabilities(d, x[m])[0]
        nll = -(n_w * d / 2.0 - n_l * d / 2.0 + n_t * x[m]).sum() + (n * log_d).sum()
        return float(nll + 0.5 * x[:m] @ penalty @ x[:m])

    def value_grad_hess(x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
        d = x[counts.lo] - x[counts.hi]
        _, pw, pl, pt = _probabilities(d, x[m])
        g_d = -(n_w - n_l) / 2.0 + n * (pw - pl) / 2.0
        g_p = -n_t + n * pt
        grad = np.zeros(m + 1)
        grad[:m] = np.bincount(counts.lo, g_d, m) - np.bincount(counts.hi, g_d, m) + penalty @ x[:m]
        grad[m] = g_p.sum()
        h_dd = n * ((pw + pl) / 4.0 - (pw - pl) ** 2 / 4.0)
        h_dp = -n * pt * (pw - pl) / 2.0
        h_pp = n * pt * (1.0 - pt)
        hess = _assemble(counts, h_dd, h_dp, h_pp)
        hess[:m, :m] += penalty
        return value(x), grad, hess

    return newton_minimize(value, value_grad_hess, x0)


def _hessian(
    counts: PairCounts, theta: NDArray[np.float64], log_nu: float, penalty: NDArray[np.float64]
) -> NDArray[np.float64]:
    m = counts.n_models
    d = theta[counts.lo] - theta[counts.hi]
    _, pw, pl, pt = _probabilities(d, log_nu)
    n = counts.pair_weight
    hess = _assemble(
        counts, n * ((pw + pl) / 4.0 - (pw - pl) ** 2 / 4.0), -n * pt * (pw - pl) / 2.0, n * pt * (1.0 - pt)
    )
    hess[:m, :m] += penalty
    return hess


@single_blas_thread
def fit_davidson(
    counts: PairCounts, provisional: NDArray[np.bool_], *, prior_sd: float | None = DEFAULT_PRIOR_SD
) -> TieFit:
    """Fit Davidson's tie model by Newton's method on the aggregated cells (same priors and gauge as BT).

    Raises ValueError when the data hold no tie at all: nu would be 0, which is plain Bradley-Terry.
    """
    m = counts.n_models
    if counts.weight[:, 2].sum() <= 0:
        raise ValueError("Davidson's tie model needs at least one tie (without ties it is Bradley-Terry)")
    battles = counts.battles_per_model()
    center = make_gauge(battles, provisional).weights
    penalty = penalty_matrix(battles, provisional, center, prior_sd)
    tie_share = counts.weight[:, 2].sum() / max(counts.weight.sum(), 1e-300)
    # nu / (2 + nu) = tie share gives a good starting nu; a data set without ties drives nu towards 0.
    start_nu = max(2.0 * tie_share / max(1.0 - tie_share, 1e-9), 1e-6)
    x, iters = _fit(counts, counts.weight, penalty, np.concatenate([np.zeros(m), [np.log(start_nu)]]))
    hess = _hessian(counts, x[:m], float(x[m]), penalty)
    return TieFit(x[:m], float(x[m]), hess, penalty, provisional, iters)


@single_blas_thread
def davidson_sandwich_covariance(counts: PairCounts, fit: TieFit) -> NDArray[np.float64]:
    """Robust covariance of (raw theta, log nu): H^-1 G H^-1 with per-cell squared scores in G."""
    d = fit.theta[counts.lo] - fit.theta[counts.hi]
    _, pw, pl, pt = _probabilities(d, fit.log_nu)
    half = (pw - pl) / 2.0
    s_d = np.stack([0.5 - half, -0.5 - half, -half], axis=1)
    s_p = np.stack([-pt, -pt, 1.0 - pt], axis=1)
    w2 = counts.weight_sq
    g = _assemble(counts, (w2 * s_d * s_d).sum(1), (w2 * s_d * s_p).sum(1), (w2 * s_p * s_p).sum(1))
    h_inv = np.linalg.inv(fit.hessian)
    cov = h_inv @ g @ h_inv
    return 0.5 * (cov + cov.T)


@single_blas_thread
def bootstrap_davidson(
    counts: PairCounts, fit: TieFit, rounds: int = 100, seed: int | np.random.Generator | None = 0
) -> NDArray[np.float64]:
    """Raw theta of `rounds` refits on multinomially redrawn cell counts, shape (rounds, models)."""
    rng = np.random.default_rng(seed)
    flat = counts.counts.ravel().astype(np.float64)
    draws = rng.multinomial(counts.n_battles, flat / flat.sum(), size=rounds)
    draws = draws.reshape(rounds, counts.n_pairs, 3)
    unit = np.divide(counts.weight, counts.counts, out=np.zeros_like(counts.weight), where=counts.counts > 0)
    x0 = np.concatenate([fit.theta, [fit.log_nu]])
    out = np.empty((rounds, counts.n_models))
    for r in range(rounds):
        x, _ = _fit(counts, draws[r] * unit, fit.penalty, x0)
        out[r] = x[: counts.n_models]
    return out
