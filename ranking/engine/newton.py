"""A small damped Newton minimiser for the engine's smooth convex objectives (style control, tie models).

The objectives are convex with cheap analytic Hessians of modest size (models + a few extra parameters), so
Newton with Armijo backtracking converges in a few iterations where a quasi-Newton method would need hundreds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["newton_minimize"]

Vector = NDArray[np.float64]


def newton_minimize(
    value: Callable[[Vector], float],
    value_grad_hess: Callable[[Vector], tuple[float, Vector, NDArray[np.float64]]],
    x0: Vector,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[Vector, int]:
    """Minimise a smooth convex function; returns (x, iterations).

    Stops when the largest component of the accepted step is below `tol`. The Hessian must be positive
    definite at every iterate (the callers' penalties guarantee it).
    """
    x = np.array(x0, dtype=np.float64)
    for it in range(1, max_iter + 1):
        f, g, h = value_grad_hess(x)
        step = np.linalg.solve(h, g)
        slope = float(g @ step)
        t = 1.0
        for _ in range(40):
            if value(x - t * step) <= f - 1e-4 * t * slope + 1e-12 * abs(f):
                break
            t *= 0.5
        x = x - t * step
        if np.max(np.abs(t * step), initial=0.0) < tol:
            return x, it
    return x, max_iter
