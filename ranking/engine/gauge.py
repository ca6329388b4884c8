"""The gauge (which constant is added to every rating) and the handling of provisional models.

Bradley-Terry only identifies rating *differences*. Two choices fix the constant: pin a reference model to a
chosen rating (FastChat pins mixtral-8x7b-instruct-v0.1 at 1114), or pin a weighted mean (LMArena's arena-rank
leaves the plain mean at 1000). A model whose maximum-likelihood rating is unbounded (it only won or only
lost) or that has very few battles must not move that constant, or one newcomer with three lucky wins would
shift the whole board. So:

* such models are *provisional*: below a battle threshold, or outside the largest strongly connected
  component of
  the "scored against" graph (Zermelo's condition for a finite MLE);
* they get a Gaussian prior pulling them towards the centre of the established models, which keeps their
  fit finite
  and barely touches anyone else (their few battles carry little information);
* the gauge is a weighted mean over the non-provisional models only (or the chosen anchor).

The gauge is a linear projection theta -> theta - 1 c^T theta, applied identically to point estimates,
covariance matrices and every bootstrap round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .pairs import PairCounts
from .scale import INITIAL_RATING, POINTS_PER_NAT, to_points

__all__ = [
    "DEFAULT_MIN_BATTLES",
    "DEFAULT_PRIOR_SD",
    "Gauge",
    "GaugeMode",
    "make_gauge",
    "penalty_matrix",
    "provisional_models",
]

#: Models with fewer battles are provisional unless the caller says otherwise.
DEFAULT_MIN_BATTLES = 50
#: Standard deviation (rating points) of the prior that keeps provisional models finite: about the spread of a
#: real leaderboard, so three lucky wins read as "probably above average", not as "best model by 400 points",
#: while a model with a few hundred battles is barely shrunk.
DEFAULT_PRIOR_SD = 200.0

GaugeMode = Literal["weighted", "mean"]

# A vanishing ridge on every model (relative to its data information) so that even a pathological bootstrap
# round, in which an established model happens to win every resampled battle, keeps a finite optimum.
_RIDGE_PER_BATTLE = 1e-9
# Weight of the (sum theta)^2 term that removes the flat direction of the likelihood; any positive value gives
# the same rating differences.
_SUM_PENALTY = 1.0


def provisional_models(counts: PairCounts, min_battles: int = DEFAULT_MIN_BATTLES) -> NDArray[np.bool_]:
    """Flag models whose rating is not reliably identified by the data.

    A model is provisional when it has fewer than `min_battles` battles, or when it lies outside the largest
    strongly connected component of the directed graph with an edge i -> j whenever i scored (won or tied)
    against j. Outside that component the maximum-likelihood rating is infinite or not comparable with the
    rest.
    """
    m = counts.n_models
    battles = counts.battles_per_model()
    provisional = battles < min_battles
    lo_scored = (counts.counts[:, 0] + counts.counts[:, 2]) > 0
    hi_scored = (counts.counts[:, 1] + counts.counts[:, 2]) > 0
    rows = np.concatenate([counts.lo[lo_scored], counts.hi[hi_scored]])
    cols = np.concatenate([counts.hi[lo_scored], counts.lo[hi_scored]])
    graph = csr_matrix((np.ones(rows.size), (rows, cols)), shape=(m, m))
    n_comp, labels = connected_components(graph, directed=True, connection="strong")
    if n_comp > 1:
        # The largest component by battles (ties broken by size) is the core the ratings are anchored to. A
        # single model is no core: nothing is identified, so then every model is provisional.
        size = np.bincount(labels, minlength=n_comp)
        comp_battles = np.bincount(labels, battles, minlength=n_comp)
        core = int(np.lexsort((size, comp_battles))[-1])
        provisional |= (labels != core) | (size[core] < 2)
    return provisional


@dataclass(frozen=True)
class Gauge:
    """How raw fitted values become published ratings.

    The published rating of model i is (theta_i - c . theta) * 400 / ln 10 + offset, so the c-weighted mean of
    the ratings equals `offset`. With an anchor, c is the anchor's unit vector and `offset` its rating.

    Attributes:
        weights: the vector c (non-negative, sums to 1).
        offset: the rating the c-weighted mean is pinned to.
        anchor: index of the anchored model, if any.
    """

    weights: NDArray[np.float64]
    offset: float = INITIAL_RATING
    anchor: int | None = None

    def center(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Subtract the gauge combination c . theta (works on one vector or a batch of rows)."""
        return theta - (theta @ self.weights)[..., None]

    def ratings(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Published ratings (points) from raw theta (one vector or a batch of rows)."""
        return to_points(self.center(theta), self.offset)

    def projector(self) -> NDArray[np.float64]:
        """The matrix P = I - 1 c^T; the covariance of the published ratings is P Cov P^T (in theta units)."""
        m = self.weights.shape[0]
        return np.eye(m) - np.outer(np.ones(m), self.weights)

    def covariance(self, cov: NDArray[np.float64]) -> NDArray[np.float64]:
        """Covariance of gauged theta from the covariance of raw theta (any generalised inverse will do)."""
        p = self.projector()
        k = cov.shape[0]
        if k > p.shape[0]:  # extra non-rating parameters (style coefficients, tie parameter) are not gauged
            full = np.eye(k)
            full[: p.shape[0], : p.shape[0]] = p
            p = full
        return p @ cov @ p.T


def make_gauge(
    battles: NDArray[np.int64],
    provisional: NDArray[np.bool_],
    *,
    anchor: int | None = None,
    anchor_rating: float = INITIAL_RATING,
    mode: GaugeMode = "weighted",
    offset: float = INITIAL_RATING,
) -> Gauge:
    """Choose the gauge: the anchor if given, else the (battle-weighted or plain) mean of established models.

    Provisional models get zero gauge weight so that they cannot shift anyone else's rating. If every model is
    provisional (a tiny data set) all models share the weight instead.
    """
    m = battles.shape[0]
    if anchor is not None:
        if not 0 <= anchor < m:
            raise ValueError(f"anchor index {anchor} out of range")
        c = np.zeros(m)
        c[anchor] = 1.0
        return Gauge(c, float(anchor_rating), anchor)
    base = battles.astype(np.float64) if mode == "weighted" else np.ones(m)
    if mode not in ("weighted", "mean"):
        raise ValueError(f"unknown gauge mode {mode!r}")
    c = np.where(provisional, 0.0, base)
    if c.sum() <= 0:
        c = base if base.sum() > 0 else np.ones(m)
    return Gauge(c / c.sum(), float(offset), None)


def penalty_matrix(
    battles: NDArray[np.int64],
    provisional: NDArray[np.bool_],
    center_weights: NDArray[np.float64],
    prior_sd: float | None = DEFAULT_PRIOR_SD,
) -> NDArray[np.float64]:
    """The quadratic penalty 1/2 theta^T R theta added to every rating fit.

    R = K^T diag(lam) K + mu 1 1^T with K = I - 1 c^T: a prior on each provisional model's distance from the
    c-weighted centre (precision 1 / prior_sd^2 in theta units), a vanishing ridge on everyone else, and a
    term that fixes the flat direction. Because K 1 = 0 the likelihood's invariance is untouched: established
    models get the plain maximum-likelihood differences.
    """
    m = battles.shape[0]
    lam = np.full(m, _RIDGE_PER_BATTLE * max(float(battles.mean()) if m else 0.0, 1.0))
    if prior_sd is not None:
        lam = np.where(provisional, (POINTS_PER_NAT / prior_sd) ** 2, lam)
    k = np.eye(m) - np.outer(np.ones(m), center_weights)
    return (k.T * lam) @ k + _SUM_PENALTY * np.ones((m, m))
