"""Online Elo, the classic sequential rating kept for comparison with the Bradley-Terry board.

Online Elo depends on the order of the votes and weights recent battles more, which is why the leaderboard
itself uses Bradley-Terry; Elo is still useful to watch drift over time.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .pairs import validate_battles
from .scale import BASE, INITIAL_RATING, SCALE

__all__ = ["online_elo"]


def online_elo(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    n_models: int,
    *,
    tstamp: ArrayLike | None = None,
    k: float = 4.0,
    base: float = BASE,
    scale: float = SCALE,
    initial: float = INITIAL_RATING,
) -> NDArray[np.float64]:
    """Sequential Elo ratings after all battles (K = 4, base 10, scale 400, initial 1000 by default).

    Battles are processed in timestamp order when `tstamp` is given (a stable sort, so equal timestamps keep
    their input order), else in input order. A tie or both-bad scores 1/2. The update is inherently
    sequential, so this is a tight Python loop over plain floats (about a second per million battles).
    """
    a, b, y = validate_battles(model_a, model_b, outcome, n_models)
    if tstamp is not None:
        ts = np.asarray(tstamp, dtype=np.float64)
        if ts.shape != a.shape:
            raise ValueError("tstamp must have one entry per battle")
        order = np.argsort(ts, kind="stable")
        a, b, y = a[order], b[order], y[order]
    ratings = [float(initial)] * n_models
    log_base = math.log(base)
    for i, j, s in zip(a.tolist(), b.tolist(), y.tolist(), strict=True):
        ri = ratings[i]
        rj = ratings[j]
        expected = 1.0 / (1.0 + math.exp((rj - ri) / scale * log_base))
        delta = k * (s - expected)
        ratings[i] = ri + delta
        ratings[j] = rj - delta
    return np.asarray(ratings, dtype=np.float64)
