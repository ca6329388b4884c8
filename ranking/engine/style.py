"""Style control: Bradley-Terry with per-battle style covariates (length, headers, lists, bold).

A vote may reward a longer or better formatted answer rather than a better model. Style control adds, for
every battle, features f = (a - b) / (a + b + 1) comparing the two answers (z-scored over the data set) and
fits

    P(A wins) = sigmoid(theta_A - theta_B + beta . f)

so theta is the model strength with style held equal; beta is reported. Rows cannot be aggregated (features
vary per battle), so the cost grows with votes. The design matrix is never built: its model part has exactly
two non-zeros per row (+1, -1), so gradients and Hessian blocks are assembled with `np.bincount` in O(rows x
features).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .bt import fit_bt
from .gauge import DEFAULT_MIN_BATTLES, DEFAULT_PRIOR_SD, make_gauge, penalty_matrix, provisional_models
from .newton import newton_minimize
from .pairs import aggregate_pairs, validate_battles
from .scale import sigmoid, softplus
from .threads import single_blas_thread

__all__ = [
    "STYLE_FEATURES",
    "StyleFit",
    "bootstrap_style_bt",
    "fit_style_bt",
    "style_contrasts",
    "style_counts_from_metadata",
    "style_features_from_metadata",
    "style_sandwich_covariance",
]

#: Feature names, in column order.
STYLE_FEATURES: tuple[str, ...] = ("length", "headers", "lists", "bold")

#: Default L2 penalty on the (z-scored) style coefficients, as a prior precision on the summed log-likelihood:
#: a N(0, 1) prior per coefficient, negligible next to thousands of votes. (arena-rank puts reg = 1 on the
#: *mean* log-likelihood, i.e. style_l2 = number of battles, which shrinks the coefficients several-fold.)
DEFAULT_STYLE_L2 = 1.0


def _count_sum(value: Any) -> float:
    """Sum of the counts in a metadata field ({"h1": 2, "h2": 0} or a plain number); null counts as 0."""
    if isinstance(value, Mapping):
        return float(sum(float(v) for v in value.values() if v is not None))
    return float(value or 0)


_COUNT_FIELDS = ("header_count", "list_count", "bold_count")
_NO_COUNTS = (float("nan"),) * 8


def style_counts_from_metadata(meta: Mapping[str, Any] | None) -> tuple[float, ...]:
    """The eight raw counts behind the style contrasts: (tokens, headers, lists, bold) for side a, then b.

    Ordered a0, b0, a1, b1, ...; `style_contrasts` turns rows of them into features. The dump reader calls
    this once per battle, so the common case (plain dicts of numbers) is a single expression; anything else
    (nulls, numbers as strings, plain totals) takes the tolerant path, which raises KeyError/TypeError/
    ValueError when a field is missing or unusable. Empty or None metadata means "not recorded": NaN counts,
    which the leaderboard leaves out of style control.
    """
    if not meta:
        return _NO_COUNTS
    try:
        return (
            meta["sum_assistant_a_tokens"] + 0.0,
            meta["sum_assistant_b_tokens"] + 0.0,
            sum(meta["header_count_a"].values()) + 0.0,
            sum(meta["header_count_b"].values()) + 0.0,
            sum(meta["list_count_a"].values()) + 0.0,
            sum(meta["list_count_b"].values()) + 0.0,
            sum(meta["bold_count_a"].values()) + 0.0,
            sum(meta["bold_count_b"].values()) + 0.0,
        )
    except (TypeError, AttributeError):
        return (
            float(meta["sum_assistant_a_tokens"]),
            float(meta["sum_assistant_b_tokens"]),
            *(_count_sum(meta[f"{field}_{side}"]) for field in _COUNT_FIELDS for side in "ab"),
        )


def style_contrasts(counts: ArrayLike) -> NDArray[np.float64]:
    """Features (a - b) / (a + b + 1) from rows of `style_counts_from_metadata`: shape (n, 8) -> (n, 4).

    The contrast is bounded in (-1, 1) and antisymmetric under swapping the sides.
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1, 2 * len(STYLE_FEATURES))
    a, b = c[:, 0::2], c[:, 1::2]
    return (a - b) / (a + b + 1.0)


def style_features_from_metadata(meta: Mapping[str, Any] | None) -> tuple[float, float, float, float]:
    """Style contrasts (length, headers, lists, bold) of one battle from a public dump's `conv_metadata`.

    Uses sum_assistant_a|b_tokens, header_count_a|b ({h1..h6}), list_count_a|b ({ordered, unordered}) and
    bold_count_a|b ({"**", "__"}); empty or None metadata gives NaNs (left out of style control).
    """
    row = style_contrasts(style_counts_from_metadata(meta))[0]
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


@dataclass(frozen=True)
class StyleFit:
    """A fitted style-controlled Bradley-Terry model.

    Attributes:
        theta: raw model strengths (natural units, before the gauge).
        beta: style coefficients, log-odds per standard deviation of each feature.
        hessian: Hessian of the penalised objective over (theta, beta).
        penalty: the rating penalty matrix R (see `gauge.penalty_matrix`).
        provisional: provisional flags.
        feature_mean, feature_std: the standardisation applied to the raw features.
        style_l2: the L2 penalty used on beta.
        iterations: Newton iterations.
    """

    theta: NDArray[np.float64]
    beta: NDArray[np.float64]
    hessian: NDArray[np.float64]
    penalty: NDArray[np.float64]
    provisional: NDArray[np.bool_]
    feature_mean: NDArray[np.float64]
    feature_std: NDArray[np.float64]
    style_l2: float
    iterations: int


@dataclass
class _Rows:
    """Per-battle data of a style fit, with the pair key precomputed for Hessian assembly."""

    a: NDArray[np.intp]
    b: NDArray[np.intp]
    y: NDArray[np.float64]
    w: NDArray[np.float64]
    f: NDArray[np.float64]
    n_models: int

    @cached_property
    def pair_key(self) -> NDArray[np.intp]:
        """Encoded ordered pair a * M + b, for one bincount of the model block."""
        return self.a * self.n_models + self.b

    @cached_property
    def f_columns(self) -> NDArray[np.float64]:
        """Features stored column by column: contiguous weights make each bincount ~1.5x faster."""
        return np.ascontiguousarray(self.f.T)


def _logits(rows: _Rows, theta: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
    return theta[rows.a] - theta[rows.b] + rows.f @ beta


def _objective(
    rows: _Rows,
    x: NDArray[np.float64],
    penalty: NDArray[np.float64],
    l2: float,
    z: NDArray[np.float64] | None = None,
) -> float:
    """Penalised negative log-likelihood; y log s(z) + (1 - y) log s(-z) = y z - softplus(z)."""
    m = rows.n_models
    theta, beta = x[:m], x[m:]
    if z is None:
        z = _logits(rows, theta, beta)
    nll = float(rows.w @ (softplus(z) - rows.y * z))
    return nll + 0.5 * float(theta @ penalty @ theta) + 0.5 * l2 * float(beta @ beta)


def _gram(rows: _Rows, h: NDArray[np.float64]) -> NDArray[np.float64]:
    """sum_i h_i x_i x_i^T for x_i = (e_a - e_b, f_i), assembled from bincounts (no design matrix)."""
    m, k = rows.n_models, rows.f.shape[1]
    pair = np.bincount(rows.pair_key, h, m * m).reshape(m, m)
    off = pair + pair.T
    out = np.zeros((m + k, m + k))
    out[:m, :m] = np.diag(off.sum(axis=1)) - off
    for j, col in enumerate(rows.f_columns):
        hf = col * h
        out[:m, m + j] = np.bincount(rows.a, hf, m) - np.bincount(rows.b, hf, m)
    out[m:, :m] = out[:m, m:].T
    out[m:, m:] = rows.f.T @ (rows.f * h[:, None])
    return out


def _scores_sum(rows: _Rows, r: NDArray[np.float64]) -> NDArray[np.float64]:
    """sum_i r_i x_i: the gradient of the data term when r = w (p - y)."""
    m = rows.n_models
    g_theta = np.bincount(rows.a, r, m) - np.bincount(rows.b, r, m)
    return np.concatenate([g_theta, rows.f.T @ r])


def _fit_rows(
    rows: _Rows, penalty: NDArray[np.float64], l2: float, x0: NDArray[np.float64]
) -> tuple[NDArray[np.float64], int]:
    m = rows.n_models
    k = rows.f.shape[1]
    extra = np.zeros((m + k, m + k))
    extra[:m, :m] = penalty
    extra[m:, m:] = l2 * np.eye(k)

    def value(x: NDArray[np.float64]) -> float:
        return _objective(rows, x, penalty, l2)

    def value_grad_hess(x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
        z = _logits(rows, x[:m], x[m:])
        p = sigmoid(z)
        grad = _scores_sum(rows, rows.w * (p - rows.y)) + extra @ x
        hess = _gram(rows, rows.w * p * (1.0 - p)) + extra
        return _objective(rows, x, penalty, l2, z), grad, hess

    return newton_minimize(value, value_grad_hess, x0)


def _standardize(
    f: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """z-score each column (population std, as arena-rank); a constant column is left unscaled."""
    mean = f.mean(axis=0)
    std = f.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (f - mean) / std, mean, std


@single_blas_thread
def fit_style_bt(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    features: ArrayLike,
    n_models: int,
    *,
    weights: ArrayLike | None = None,
    provisional: NDArray[np.bool_] | None = None,
    min_battles: int = DEFAULT_MIN_BATTLES,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    style_l2: float = DEFAULT_STYLE_L2,
    standardize: bool = True,
) -> StyleFit:
    """Fit style-controlled Bradley-Terry on per-battle rows by Newton's method.

    Args:
        model_a, model_b, outcome: the battles (outcome 1 / 0 / 0.5 as everywhere in the engine).
        features: raw style contrasts, shape (battles, features), e.g. from `style_features_from_metadata`.
        n_models: number of models.
        weights: optional per-battle weights (e.g. inverse-propensity, mean 1).
        provisional: provisional flags; computed from the battles with `min_battles` when omitted.
        prior_sd: prior standard deviation (points) for provisional models.
        style_l2: L2 penalty on the standardised coefficients (prior precision on the summed log-likelihood).
        standardize: z-score each feature first (the coefficients are then per standard deviation).
    """
    a, b, y = validate_battles(model_a, model_b, outcome, n_models)
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != a.shape[0]:
        raise ValueError("features must have shape (battles, n_features)")
    if not np.all(np.isfinite(f)):
        raise ValueError("features must be finite (drop battles without style metadata first)")
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    counts = aggregate_pairs(a, b, y, n_models, w)
    if provisional is None:
        provisional = provisional_models(counts, min_battles)
    if standardize:
        f, mean, std = _standardize(f)
    else:
        mean, std = np.zeros(f.shape[1]), np.ones(f.shape[1])
    battles = counts.battles_per_model()
    center = make_gauge(battles, provisional).weights
    penalty = penalty_matrix(battles, provisional, center, prior_sd)
    rows = _Rows(a, b, y, w, np.ascontiguousarray(f), n_models)
    # Plain Bradley-Terry (aggregated, milliseconds) is an excellent start for theta.
    start = fit_bt(counts, provisional, prior_sd=prior_sd).theta
    x, iters = _fit_rows(rows, penalty, style_l2, np.concatenate([start, np.zeros(f.shape[1])]))
    hess = _hessian(rows, x, penalty, style_l2)
    return StyleFit(x[:n_models], x[n_models:], hess, penalty, provisional, mean, std, float(style_l2), iters)


def _hessian(
    rows: _Rows, x: NDArray[np.float64], penalty: NDArray[np.float64], l2: float
) -> NDArray[np.float64]:
    m = rows.n_models
    p = sigmoid(_logits(rows, x[:m], x[m:]))
    hess = _gram(rows, rows.w * p * (1.0 - p))
    hess[:m, :m] += penalty
    hess[m:, m:] += l2 * np.eye(x.shape[0] - m)
    return hess


def _rows_for(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    features: ArrayLike,
    fit: StyleFit,
    weights: ArrayLike | None,
) -> _Rows:
    m = fit.theta.shape[0]
    a, b, y = validate_battles(model_a, model_b, outcome, m)
    f = (np.asarray(features, dtype=np.float64) - fit.feature_mean) / fit.feature_std
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    return _Rows(a, b, y, w, np.ascontiguousarray(f), m)


@single_blas_thread
def style_sandwich_covariance(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    features: ArrayLike,
    fit: StyleFit,
    weights: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Robust covariance H^-1 G H^-1 of (raw theta, beta); G: centred covariance of per-battle scores."""
    rows = _rows_for(model_a, model_b, outcome, features, fit, weights)
    p = sigmoid(_logits(rows, fit.theta, fit.beta))
    r = rows.w * (p - rows.y)
    g = _gram(rows, r * r)
    mean_score = _scores_sum(rows, r) / max(r.size, 1)
    g -= r.size * np.outer(mean_score, mean_score)
    h_inv = np.linalg.inv(fit.hessian)
    cov = h_inv @ g @ h_inv
    return 0.5 * (cov + cov.T)


@single_blas_thread
def bootstrap_style_bt(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    features: ArrayLike,
    fit: StyleFit,
    rounds: int = 100,
    seed: int | np.random.Generator | None = 0,
    weights: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(theta, beta) of `rounds` refits on battles resampled with replacement: (rounds, M), (rounds, F).

    Rows cannot be aggregated, so rounds are solved one after another, each warm-started at the full fit (two
    or three Newton steps). Prefer the sandwich estimator on large dumps.
    """
    rng = np.random.default_rng(seed)
    rows = _rows_for(model_a, model_b, outcome, features, fit, weights)
    n = rows.y.size
    x0 = np.concatenate([fit.theta, fit.beta])
    thetas = np.empty((rounds, fit.theta.size))
    betas = np.empty((rounds, fit.beta.size))
    for i in range(rounds):
        mult = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        boot = _Rows(rows.a, rows.b, rows.y, rows.w * mult, rows.f, rows.n_models)
        boot.__dict__.update(pair_key=rows.pair_key, f_columns=rows.f_columns)
        x, _ = _fit_rows(boot, fit.penalty, fit.style_l2, x0)
        thetas[i], betas[i] = x[: fit.theta.size], x[fit.theta.size :]
    return thetas, betas
