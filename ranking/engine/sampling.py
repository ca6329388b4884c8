"""Information-aware pair sampling: spend votes where they most reduce ranking uncertainty.

Uniform pairing wastes votes on lopsided pairs (a 95%-favourite teaches little: Fisher information p(1 - p) is
0.05 against 0.25 for an even match) and on models that are already well measured. Here each candidate pair
{a, b} is scored by how much one more battle would shrink a weighted sum of the variances of all rating
differences,

    U = sum_{i<j} omega_ij Var(theta_i - theta_j),
    omega_ij = 1 + contest * exp(-z_ij^2 / 2),   z_ij = (theta_i - theta_j) / sd(theta_i - theta_j),

where the `contest` term puts extra weight on pairs whose order is still uncertain (overlapping intervals).
With covariance S and u = e_a - e_b, one battle of information I = p(1 - p) is a rank-one update, and

    gain(a, b) = I / (1 + I u^T S u) * u^T (S L_omega S) u,

with L_omega the Laplacian of omega; all pairs are scored in O(M^3). Probabilities are proportional to the
gain, mixed with a uniform floor so every allowed pair keeps a non-zero chance (the data stay usable for any
analysis and no pair is starved).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .gauge import DEFAULT_PRIOR_SD
from .scale import INITIAL_RATING, POINTS_PER_NAT, sigmoid, to_theta
from .threads import single_blas_thread

__all__ = ["information_gain", "model_based_covariance", "pair_probabilities", "sample_pairs"]


@single_blas_thread
def model_based_covariance(
    ratings: ArrayLike, pair_counts: ArrayLike, prior_sd: float = DEFAULT_PRIOR_SD
) -> NDArray[np.float64]:
    """Covariance (theta units) implied by the current ratings and the symmetric matrix of battles per pair.

    The inverse of the Fisher information sum_pairs n_ab p_ab (1 - p_ab) L_ab plus a weak prior (so that a
    brand-new model with no battles has a large but finite variance). Use it when no fitted covariance is at
    hand.
    """
    theta = to_theta(ratings)
    n = np.asarray(pair_counts, dtype=np.float64)
    m = theta.shape[0]
    if n.shape != (m, m):
        raise ValueError("pair_counts must be a (models x models) matrix")
    n = 0.5 * (n + n.T)  # symmetric by contract (PairCounts.pair_matrix); symmetrise against rounding
    p = sigmoid(theta[:, None] - theta[None, :])
    w = n * p * (1.0 - p)
    info = np.diag(w.sum(axis=1)) - w + np.eye(m) * (POINTS_PER_NAT / prior_sd) ** 2
    return np.linalg.inv(info)


@single_blas_thread
def information_gain(
    ratings: ArrayLike, covariance: ArrayLike, *, contest: float = 2.0
) -> NDArray[np.float64]:
    """Expected reduction of U (see module docstring) from one battle of each pair; symmetric (M x M), zero
    diagonal.

    Args:
        ratings: current ratings in points.
        covariance: covariance of the ratings in theta units (natural log-odds), any gauge.
        contest: extra weight on pairs whose order is uncertain; 0 gives plain A-optimal design.
    """
    theta = to_theta(ratings, INITIAL_RATING)
    s = np.asarray(covariance, dtype=np.float64)
    m = theta.shape[0]
    if s.shape != (m, m):
        raise ValueError("covariance must be (models x models)")
    d = np.diag(s)
    var = np.clip(d[:, None] + d[None, :] - 2.0 * s, 1e-300, None)
    gap = theta[:, None] - theta[None, :]
    omega = 1.0 + contest * np.exp(-0.5 * gap * gap / var)
    np.fill_diagonal(omega, 0.0)
    lap = np.diag(omega.sum(axis=1)) - omega
    a = s @ lap @ s
    da = np.diag(a)
    quad = da[:, None] + da[None, :] - 2.0 * a  # u^T S L S u for every pair
    p = sigmoid(gap)
    info = p * (1.0 - p)
    gain = info / (1.0 + info * var) * np.clip(quad, 0.0, None)
    np.fill_diagonal(gain, 0.0)
    return gain


@single_blas_thread
def pair_probabilities(
    ratings: ArrayLike,
    *,
    covariance: ArrayLike | None = None,
    pair_counts: ArrayLike | None = None,
    floor: float = 0.2,
    contest: float = 2.0,
    allowed: ArrayLike | None = None,
    prior_sd: float = DEFAULT_PRIOR_SD,
) -> NDArray[np.float64]:
    """Probability of drawing each unordered pair next: a symmetric (M x M) matrix whose upper triangle sums
    to 1.

    Args:
        ratings: current ratings (points).
        covariance: fitted covariance in theta units; computed from `pair_counts` when omitted.
        pair_counts: battles so far per pair (M x M), used when no covariance is given.
        floor: share of probability spread uniformly over all allowed pairs (0 < floor <= 1), so every pair
            keeps at least floor / n_pairs.
        contest: weight on pairs with overlapping intervals (see `information_gain`).
        allowed: optional boolean (M x M) mask of pairs that may meet (outages, two unreleased models, ...).
    """
    if not 0.0 < floor <= 1.0:
        raise ValueError("floor must lie in (0, 1]")
    r = np.asarray(ratings, dtype=np.float64)
    m = r.shape[0]
    if covariance is None:
        if pair_counts is None:
            raise ValueError("give a covariance or the pair counts")
        covariance = model_based_covariance(r, pair_counts, prior_sd)
    mask = np.triu(np.ones((m, m), dtype=bool), 1)
    if allowed is not None:
        allow = np.asarray(allowed, dtype=bool)
        mask &= allow & allow.T
    n_allowed = int(mask.sum())
    if n_allowed == 0:
        raise ValueError("no pair is allowed")
    gain = np.where(mask, information_gain(r, covariance, contest=contest), 0.0)
    total = gain.sum()
    informed = gain / total if total > 0 else mask / n_allowed
    probs = (1.0 - floor) * informed + floor * mask / n_allowed
    return probs + probs.T


def sample_pairs(
    probabilities: ArrayLike, size: int, rng: np.random.Generator | int | None = None
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Draw `size` battles from pair probabilities; sides are randomised (position bias must average out)."""
    gen = np.random.default_rng(rng)
    p = np.asarray(probabilities, dtype=np.float64)
    m = p.shape[0]
    iu, ju = np.triu_indices(m, 1)
    w = p[iu, ju]
    picks = gen.choice(w.size, size=size, p=w / w.sum())
    a, b = iu[picks], ju[picks]
    swap = gen.random(size) < 0.5
    return np.where(swap, b, a), np.where(swap, a, b)
