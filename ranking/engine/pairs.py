"""Aggregation of battles into per-pair outcome cells.

Bradley-Terry (with ties counted as half a win) depends on the data only through, for every unordered pair of
models, the weighted number of battles and the weighted score of one side. The sandwich estimator additionally
needs the sum of squared weights per outcome, so we keep three outcome cells per pair (low-index model won,
high-index model won, tie or both-bad). After aggregation the cost of a fit depends on the number of pairs,
not of votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "OUTCOME_CELLS",
    "PairCounts",
    "aggregate_pairs",
    "ipw_weights",
    "reweight_pairs",
    "validate_battles",
]

#: The three cells kept per pair, in column order: the lower-index model won, the higher-index model won, a
#: tie.
OUTCOME_CELLS: tuple[str, str, str] = ("lo_won", "hi_won", "tie")

#: The score of the lower-index model in each cell (a tie or both-bad is half a win for each side).
CELL_SCORE_LO: NDArray[np.float64] = np.array([1.0, 0.0, 0.5])

# Above this many possible (pair, cell) keys a dense bincount would allocate too much; np.unique is used
# instead.
_DENSE_KEY_LIMIT = 8_000_000


@dataclass(frozen=True)
class PairCounts:
    """Sufficient statistics of a set of battles, one row per unordered pair that met at least once.

    Attributes:
        n_models: number of models (indices run from 0 to n_models - 1).
        lo, hi: model indices of each pair, lo < hi.
        counts: raw battle counts per cell, shape (P, 3) in `OUTCOME_CELLS` order.
        weight: summed battle weights per cell (equal to `counts` when unweighted), shape (P, 3).
        weight_sq: summed squared battle weights per cell (for the sandwich estimator), shape (P, 3).
    """

    n_models: int
    lo: NDArray[np.intp]
    hi: NDArray[np.intp]
    counts: NDArray[np.int64]
    weight: NDArray[np.float64]
    weight_sq: NDArray[np.float64]

    @property
    def n_pairs(self) -> int:
        """Number of distinct pairs that met."""
        return int(self.lo.shape[0])

    @property
    def n_battles(self) -> int:
        """Total number of raw battles."""
        return int(self.counts.sum())

    @property
    def pair_weight(self) -> NDArray[np.float64]:
        """Summed weight of all battles of each pair."""
        return self.weight.sum(axis=1)

    @property
    def pair_score_lo(self) -> NDArray[np.float64]:
        """Weighted score of the lower-index model of each pair (wins + half the ties)."""
        return self.weight @ CELL_SCORE_LO

    def battles_per_model(self) -> NDArray[np.int64]:
        """Raw number of battles each model took part in."""
        n = self.counts.sum(axis=1)
        per_model = np.bincount(self.lo, n, self.n_models) + np.bincount(self.hi, n, self.n_models)
        return per_model.astype(np.int64)

    def score_per_model(self) -> NDArray[np.float64]:
        """Raw score of each model: wins plus half its ties (unweighted, for the published win rate)."""
        c = self.counts.astype(np.float64)
        lo_score = c @ CELL_SCORE_LO
        hi_score = c @ CELL_SCORE_LO[[1, 0, 2]]
        return np.bincount(self.lo, lo_score, self.n_models) + np.bincount(self.hi, hi_score, self.n_models)

    def pair_matrix(self) -> NDArray[np.float64]:
        """Symmetric (n_models, n_models) matrix of raw battle counts per pair."""
        m = np.zeros((self.n_models, self.n_models))
        n = self.counts.sum(axis=1)
        m[self.lo, self.hi] = n
        m[self.hi, self.lo] = n
        return m


def validate_battles(
    model_a: ArrayLike, model_b: ArrayLike, outcome: ArrayLike, n_models: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Check and convert the three battle arrays, raising ValueError with a reason on bad input.

    Outcomes are 1 (model A won), 0 (model B won) or 0.5 (tie or both-bad); other values have no cell.
    """
    a = np.asarray(model_a)
    b = np.asarray(model_b)
    y = np.asarray(outcome, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.shape != y.shape:
        raise ValueError("model_a, model_b and outcome must be 1-d arrays of the same length")
    if a.size and not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise ValueError("model_a and model_b must hold integer model indices")
    a = a.astype(np.intp, copy=False)
    b = b.astype(np.intp, copy=False)
    if a.size:
        if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_models:
            raise ValueError(f"model indices must lie in [0, {n_models})")
        if np.any(a == b):
            raise ValueError(f"a model cannot battle itself (first at position {int(np.argmax(a == b))})")
        bad = (y != 0.0) & (y != 0.5) & (y != 1.0)
        if np.any(bad):
            first = int(np.argmax(bad))
            raise ValueError(f"outcome must be 0, 0.5 or 1 (first bad value at position {first})")
    return a, b, y


def ipw_weights(
    model_a: ArrayLike, model_b: ArrayLike, n_models: int, floor: int = 50
) -> NDArray[np.float64]:
    """Inverse-propensity battle weights w = 1 / max(pair count, floor), normalised to mean 1.

    Pairs the sampler favoured (new models, battle targets) would otherwise dominate the fit; re-weighting
    makes every pair count roughly equally. Normalising to mean 1 keeps the weights on the scale of battles,
    so priors and ridge terms keep their meaning.
    """
    a = np.asarray(model_a, dtype=np.intp)
    b = np.asarray(model_b, dtype=np.intp)
    key = np.minimum(a, b) * n_models + np.maximum(a, b)
    _, inverse, pair_n = np.unique(key, return_inverse=True, return_counts=True)
    w = 1.0 / np.maximum(pair_n[inverse], floor).astype(np.float64)
    return w / w.mean() if w.size else w


def aggregate_pairs(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    n_models: int,
    weights: ArrayLike | None = None,
) -> PairCounts:
    """Aggregate battles into `PairCounts` (vectorised: one bincount over the encoded cell keys).

    Args:
        model_a, model_b: integer model indices of the two sides of each battle.
        outcome: 1 if model A won, 0 if model B won, 0.5 for a tie or both-bad.
        n_models: number of models.
        weights: optional per-battle weights (for example `ipw_weights`); the caller decides their scale.
    """
    a, b, y = validate_battles(model_a, model_b, outcome, n_models)
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    y_lo = np.where(a < b, y, 1.0 - y)
    cell = np.where(y_lo == 1.0, 0, np.where(y_lo == 0.0, 1, 2))
    key = (lo * n_models + hi) * 3 + cell
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and w.shape != y.shape:
        raise ValueError("weights must have one entry per battle")
    n_keys = n_models * n_models * 3
    if n_keys <= _DENSE_KEY_LIMIT:
        counts = np.bincount(key, minlength=n_keys).reshape(-1, 3)
        wsum = counts.astype(np.float64) if w is None else np.bincount(key, w, n_keys).reshape(-1, 3)
        wsq = wsum if w is None else np.bincount(key, w * w, n_keys).reshape(-1, 3)
        pair_ids = np.flatnonzero(counts.sum(axis=1))
        counts, wsum, wsq = counts[pair_ids], wsum[pair_ids], wsq[pair_ids]
    else:
        pair_key = key // 3
        pair_ids, inverse = np.unique(pair_key, return_inverse=True)
        flat = inverse * 3 + cell
        size = pair_ids.size * 3
        counts = np.bincount(flat, minlength=size).reshape(-1, 3)
        wsum = counts.astype(np.float64) if w is None else np.bincount(flat, w, size).reshape(-1, 3)
        wsq = wsum if w is None else np.bincount(flat, w * w, size).reshape(-1, 3)
    return PairCounts(
        n_models=n_models,
        lo=(pair_ids // n_models).astype(np.intp),
        hi=(pair_ids % n_models).astype(np.intp),
        counts=counts.astype(np.int64),
        weight=np.ascontiguousarray(wsum, dtype=np.float64),
        weight_sq=np.ascontiguousarray(wsq, dtype=np.float64),
    )


def reweight_pairs(counts: PairCounts, floor: int = 50) -> PairCounts:
    """Inverse-propensity weights applied to aggregated cells: each battle of a pair weighs 1 / max(n, floor).

    Equivalent to `aggregate_pairs(..., weights=ipw_weights(...))` on the raw battles (unweighted input), for
    callers that only keep counts. Weights are normalised to mean 1 per battle.
    """
    n = counts.counts.sum(axis=1).astype(np.float64)
    w = 1.0 / np.maximum(n, floor)
    total = float(n.sum())
    scale = total / float((n * w).sum()) if total > 0 else 1.0
    w = w * scale
    c = counts.counts.astype(np.float64)
    return PairCounts(
        counts.n_models, counts.lo, counts.hi, counts.counts, c * w[:, None], c * (w * w)[:, None]
    )
