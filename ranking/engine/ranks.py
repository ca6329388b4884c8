"""Rank (UB): the rank a model is guaranteed not to fall below, given the confidence intervals."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["rank_ub"]


def rank_ub(lower: ArrayLike, upper: ArrayLike) -> NDArray[np.int64]:
    """Rank (UB) = 1 + the number of models whose lower bound lies strictly above this model's upper bound.

    Models whose intervals overlap share a rank, so the table never claims an order the data cannot support.
    O(M log M): sort the lower bounds once and count with a binary search.
    """
    lo = np.asarray(lower, dtype=np.float64)
    up = np.asarray(upper, dtype=np.float64)
    if lo.shape != up.shape:
        raise ValueError("lower and upper must have the same shape")
    sorted_lo = np.sort(lo)
    above = lo.size - np.searchsorted(sorted_lo, up, side="right")
    return (1 + above).astype(np.int64)
