"""Run the engine's many small matrix operations on one BLAS thread.

The engine's linear algebra is small (models x models, a few hundred at most) and frequent: a Newton step, a
batched solve, a 100 x 100 inverse. Multi-threaded OpenBLAS gains nothing there, and when the cores are busy
(web workers, Celery, a database on the same box) its spinning threads stall each call: on a loaded 2-core
machine Bradley-Terry with sandwich CIs on 1M battles took 0.70 s with two BLAS threads and 0.06 s with one.
The large operations (bincounts over millions of battles) are numpy loops and use no BLAS threads anyway.

Uses threadpoolctl when it is installed; without it the engine runs unchanged with the process's default.
threadpoolctl's limit is process-wide while it lasts, so another thread's BLAS work is briefly limited too.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

try:  # optional: a small pure-Python package (scikit-learn depends on it)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    threadpool_limits = None

__all__ = ["single_blas_thread"]

P = ParamSpec("P")
R = TypeVar("R")

_state = threading.local()


def single_blas_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run `fn` with BLAS limited to one thread (re-entrant calls pay nothing extra)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if threadpool_limits is None or getattr(_state, "active", False):
            return fn(*args, **kwargs)
        _state.active = True
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                return fn(*args, **kwargs)
        finally:
            _state.active = False

    return wrapper
