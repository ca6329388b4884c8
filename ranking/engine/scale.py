"""The rating scale shared by every model in the engine.

Internally every fit works in natural log-odds units ("theta"): P(a beats b) = sigmoid(theta_a - theta_b).
Published ratings use the chess convention P(a beats b) = 1 / (1 + 10 ** ((R_b - R_a) / 400)), so one natural
unit is 400 / ln 10 ~ 173.7 rating points. Keeping the conversion in one place keeps Elo, Bradley-Terry, style
control and the samplers on the same scale.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, log_expit

SCALE: float = 400.0
BASE: float = 10.0
INITIAL_RATING: float = 1000.0
POINTS_PER_NAT: float = SCALE / math.log(BASE)


def to_points(theta: ArrayLike, offset: float = INITIAL_RATING) -> NDArray[np.float64]:
    """Convert natural log-odds units to rating points, adding the gauge offset."""
    return np.asarray(theta, dtype=np.float64) * POINTS_PER_NAT + offset


def to_theta(points: ArrayLike, offset: float = INITIAL_RATING) -> NDArray[np.float64]:
    """Convert rating points back to natural log-odds units (the inverse of `to_points`)."""
    return (np.asarray(points, dtype=np.float64) - offset) / POINTS_PER_NAT


def sigmoid(x: ArrayLike) -> NDArray[np.float64]:
    """Numerically stable logistic function (scipy's ufunc: fast and free of overflow warnings)."""
    return expit(np.asarray(x, dtype=np.float64))


def log_sigmoid(x: ArrayLike) -> NDArray[np.float64]:
    """log(sigmoid(x)) without overflow or cancellation for large |x|."""
    return log_expit(np.asarray(x, dtype=np.float64))


def softplus(x: ArrayLike) -> NDArray[np.float64]:
    """log(1 + exp(x)), stable for large |x|; -softplus(-x) = log sigmoid(x).

    Written out by hand because it is the hot loop of style control and runs faster than the library ufuncs.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
