"""Synthetic battles with known true ratings, shared by the engine tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Simulated:
    """Battles drawn from a Bradley-Terry model with known strengths (natural units)."""

    theta: NDArray[np.float64]
    model_a: NDArray[np.intp]
    model_b: NDArray[np.intp]
    outcome: NDArray[np.float64]

    @property
    def names(self) -> list[str]:
        return [f"model-{i:03d}" for i in range(self.theta.size)]


def simulate(
    n_models: int,
    n_battles: int,
    rng: np.random.Generator,
    *,
    spread: float = 1.0,
    tie_share: float = 0.0,
    theta: NDArray[np.float64] | None = None,
) -> Simulated:
    """Uniformly paired battles; a `tie_share` of them are ties, drawn independently of the strengths.

    With independent ties the expected score is still sigmoid(d) mixed with 1/2, so Bradley-Terry with ties as
    half wins is slightly attenuated; tests that check calibration against the truth use tie_share = 0.
    """
    th = rng.normal(0.0, spread, n_models) if theta is None else np.asarray(theta, dtype=np.float64)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p = 1.0 / (1.0 + np.exp(-(th[a] - th[b])))
    y = (rng.random(n_battles) < p).astype(np.float64)
    if tie_share > 0:
        y[rng.random(n_battles) < tie_share] = 0.5
    return Simulated(th, a.astype(np.intp), b.astype(np.intp), y)
