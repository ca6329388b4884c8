"""The whole leaderboard from battle arrays: fit, gauge, confidence intervals, provisional flags, rank(UB)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .bt import bootstrap_bt, fit_bt, sandwich_covariance, z_value
from .gauge import DEFAULT_MIN_BATTLES, DEFAULT_PRIOR_SD, Gauge, GaugeMode, make_gauge, provisional_models
from .pairs import PairCounts, aggregate_pairs, ipw_weights, reweight_pairs, validate_battles
from .ranks import rank_ub
from .scale import INITIAL_RATING, POINTS_PER_NAT
from .style import (
    DEFAULT_STYLE_L2,
    STYLE_FEATURES,
    bootstrap_style_bt,
    fit_style_bt,
    style_sandwich_covariance,
)
from .threads import single_blas_thread
from .ties import bootstrap_davidson, davidson_sandwich_covariance, fit_davidson

__all__ = [
    "CIMethod",
    "Leaderboard",
    "LeaderboardOptions",
    "LeaderboardRow",
    "TieModel",
    "leaderboard",
    "leaderboard_from_counts",
]

CIMethod = Literal["sandwich", "bootstrap"]
TieModel = Literal["half", "davidson"]


@dataclass(frozen=True)
class LeaderboardRow:
    """One model on the board: ratings and bounds in rating points, win_rate counting a tie as half a win."""

    model: str
    rating: float
    lower: float
    upper: float
    rank_ub: int
    battles: int
    win_rate: float
    provisional: bool


@dataclass(frozen=True)
class Leaderboard:
    """A computed leaderboard, rows sorted by rating (best first).

    Attributes:
        rows: one row per model with at least one battle.
        style_coefficients: style coefficient per feature (log-odds per standard deviation), empty
            without style control.
        style_intervals: confidence interval of each style coefficient.
        tie_nu: Davidson's tie parameter when the tie model is used.
        ci: the interval method used.
        confidence: the interval level.
        n_battles: battles that entered the fit.
        dropped_battles: battles left out (for style control: those without style metadata).
    """

    rows: list[LeaderboardRow]
    style_coefficients: dict[str, float] = field(default_factory=dict)
    style_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    tie_nu: float | None = None
    ci: CIMethod = "sandwich"
    confidence: float = 0.95
    n_battles: int = 0
    dropped_battles: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {"models": [...], "style_coefficients": {...}, ...}."""
        out: dict[str, Any] = {
            "models": [asdict(r) for r in self.rows],
            "style_coefficients": dict(self.style_coefficients),
            "style_intervals": {k: list(v) for k, v in self.style_intervals.items()},
            "ci": self.ci,
            "confidence": self.confidence,
            "n_battles": self.n_battles,
            "dropped_battles": self.dropped_battles,
        }
        if self.tie_nu is not None:
            out["tie_nu"] = self.tie_nu
        return out

    def by_model(self) -> dict[str, LeaderboardRow]:
        """Rows keyed by model name."""
        return {r.model: r for r in self.rows}


@dataclass(frozen=True)
class LeaderboardOptions:
    """Settings shared by every way of computing a board.

    Attributes:
        ci: "sandwich" (robust covariance, default) or "bootstrap" (`bootstrap_rounds` multinomial redraws).
        bootstrap_rounds: bootstrap rounds (100).
        confidence: interval level (0.95).
        seed: bootstrap seed or generator.
        anchor: (model name, rating) to pin one reference model; otherwise the `gauge` mean of the established
            models ("weighted" by battles, or plain "mean" as in arena-rank) equals `offset`.
        gauge: "weighted" or "mean", see `anchor`.
        offset: rating of the gauge mean (1000).
        min_battles: models with fewer battles are provisional (so are models whose MLE is unbounded).
        prior_sd: prior standard deviation (points) that keeps provisional models finite; None disables it.
        tie_model: "half" (a tie is half a win, the standard) or "davidson" (ties modelled; reports tie_nu).
    """

    ci: CIMethod = "sandwich"
    bootstrap_rounds: int = 100
    confidence: float = 0.95
    seed: int | np.random.Generator | None = 0
    anchor: tuple[str, float] | None = None
    gauge: GaugeMode = "weighted"
    offset: float = INITIAL_RATING
    min_battles: int = DEFAULT_MIN_BATTLES
    prior_sd: float | None = DEFAULT_PRIOR_SD
    tie_model: TieModel = "half"

    def __post_init__(self) -> None:
        if self.ci not in ("sandwich", "bootstrap"):
            raise ValueError(f"unknown ci method {self.ci!r}")
        if self.tie_model not in ("half", "davidson"):
            raise ValueError(f"unknown tie model {self.tie_model!r}")
        if self.bootstrap_rounds < 2:
            raise ValueError("bootstrap_rounds must be at least 2")
        z_value(self.confidence)  # validates the level


@dataclass(frozen=True)
class _Estimate:
    """Gauged ratings and bounds (points) for every model, plus extra fitted quantities."""

    rating: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    model_sd: NDArray[np.float64]  # model-based standard deviation (points), the floor for provisional models
    style: dict[str, float] = field(default_factory=dict)
    style_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    tie_nu: float | None = None


def _weights(
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    n_models: int,
    weights: ArrayLike | None,
    ipw: bool,
    ipw_floor: int,
) -> NDArray[np.float64] | None:
    """Combine caller weights with inverse-propensity weights, normalised to mean 1 (the scale of battles)."""
    if weights is None and not ipw:
        return None
    w = np.ones(a.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != a.shape:
        raise ValueError("weights must have one entry per battle")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    if ipw:
        w = w * ipw_weights(a, b, n_models, ipw_floor)
    mean = w.mean() if w.size else 1.0
    return w / mean if mean > 0 else w


def _interval_from_cov(
    gauge: Gauge, theta: NDArray[np.float64], cov: NDArray[np.float64], z: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    m = theta.shape[0]
    sd = np.sqrt(np.clip(np.diag(gauge.covariance(cov))[:m], 0.0, None)) * POINTS_PER_NAT
    rating = gauge.ratings(theta)
    return rating, rating - z * sd, rating + z * sd


def _model_sd(gauge: Gauge, hessian: NDArray[np.float64], m: int) -> NDArray[np.float64]:
    cov = gauge.covariance(np.linalg.inv(hessian))
    return np.sqrt(np.clip(np.diag(cov)[:m], 0.0, None)) * POINTS_PER_NAT


def _quantiles(
    samples: NDArray[np.float64], confidence: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile interval from bootstrap samples, with the p (B + 1) order-statistic convention.

    numpy's default (linear, p (B - 1)) cuts the tails too short for B = 100: its "95%" intervals covered the
    truth 93.2% of the time in 10,000 simulated intervals, against 95.1% with this convention.
    """
    tail = (1.0 - confidence) / 2.0
    q = np.quantile(samples, [tail, 1.0 - tail], axis=0, method="weibull")
    return q[0], q[1]


@single_blas_thread
def leaderboard(
    model_a: ArrayLike,
    model_b: ArrayLike,
    outcome: ArrayLike,
    models: Sequence[str],
    *,
    weights: ArrayLike | None = None,
    ipw: bool = False,
    ipw_floor: int = 50,
    style_features: ArrayLike | None = None,
    style_l2: float = DEFAULT_STYLE_L2,
    style_names: Sequence[str] = STYLE_FEATURES,
    **options: Any,
) -> Leaderboard:
    """Compute a leaderboard from battle arrays.

    Args:
        model_a, model_b: integer indices into `models` for the two sides of each battle.
        outcome: 1 = model A won, 0 = model B won, 0.5 = tie or both-bad.
        models: model names, indexed by the integers above.
        weights: optional per-battle weights; `ipw=True` multiplies in inverse-propensity pair weights
            1 / max(pair count, ipw_floor). Weights are normalised to mean 1.
        style_features: raw per-battle style contrasts (battles x features) to turn on style control;
            rows with a NaN (no metadata) are left out of the whole fit and counted in `dropped_battles`.
        style_l2: L2 penalty on the z-scored style coefficients (see `style.DEFAULT_STYLE_L2`).
        style_names: names of the style feature columns.
        **options: any field of `LeaderboardOptions` (ci, bootstrap_rounds, confidence, seed, anchor, gauge,
            offset, min_battles, prior_sd, tie_model).
    """
    opts = LeaderboardOptions(**options)
    names = list(models)
    m = len(names)
    a, b, y = validate_battles(model_a, model_b, outcome, m)
    w_in = None if weights is None else np.asarray(weights, dtype=np.float64)
    if style_features is None:
        w = _weights(a, b, m, w_in, ipw, ipw_floor)
        return leaderboard_from_counts(aggregate_pairs(a, b, y, m, w), names, options=opts)

    features = np.asarray(style_features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != a.shape[0]:
        raise ValueError("style_features must have shape (battles, n_features)")
    if len(style_names) != features.shape[1]:
        raise ValueError("style_names must name every style feature column")
    if opts.tie_model != "half":
        raise ValueError("style control is available with tie_model='half' only")
    keep = np.all(np.isfinite(features), axis=1)
    dropped = int((~keep).sum())
    if dropped:
        a, b, y, features = a[keep], b[keep], y[keep], features[keep]
        w_in = None if w_in is None else w_in[keep]
    w = _weights(a, b, m, w_in, ipw, ipw_floor)
    counts = aggregate_pairs(a, b, y, m, w)
    provisional, gauge_obj = _gauge_for(counts, names, opts)
    est = _style_estimate(a, b, y, features, w, provisional, style_l2, style_names, gauge_obj, opts)
    return _board(names, counts, provisional, est, opts, dropped)


@single_blas_thread
def leaderboard_from_counts(
    counts: PairCounts,
    models: Sequence[str],
    *,
    ipw: bool = False,
    ipw_floor: int = 50,
    options: LeaderboardOptions | None = None,
    **kwargs: Any,
) -> Leaderboard:
    """Compute a leaderboard from aggregated pair cells (e.g. tallies kept incrementally in a database).

    Everything except style control works from counts alone, at a cost independent of the number of votes.

    Args:
        counts: the pair cells (`aggregate_pairs`, or built directly from stored tallies).
        models: model names, indexed like `counts`.
        ipw: re-weight each pair by 1 / max(pair count, ipw_floor) (normalised to mean 1 per battle).
        options: a `LeaderboardOptions`; or pass its fields as keyword arguments.
    """
    opts = options if options is not None else LeaderboardOptions(**kwargs)
    names = list(models)
    if len(names) != counts.n_models:
        raise ValueError("models must name every model index of the counts")
    if ipw:
        counts = reweight_pairs(counts, ipw_floor)
    provisional, gauge_obj = _gauge_for(counts, names, opts)
    z = z_value(opts.confidence)
    m = counts.n_models
    if opts.tie_model == "davidson":
        fit_d = fit_davidson(counts, provisional, prior_sd=opts.prior_sd)
        model_sd = _model_sd(gauge_obj, fit_d.hessian, m)
        rating = gauge_obj.ratings(fit_d.theta)
        if opts.ci == "sandwich":
            _, lower, upper = _interval_from_cov(
                gauge_obj, fit_d.theta, davidson_sandwich_covariance(counts, fit_d), z
            )
        else:
            boot = bootstrap_davidson(counts, fit_d, opts.bootstrap_rounds, opts.seed)
            lower, upper = _quantiles(gauge_obj.ratings(boot), opts.confidence)
        est = _Estimate(rating, lower, upper, model_sd, tie_nu=fit_d.nu)
    else:
        fit = fit_bt(counts, provisional, prior_sd=opts.prior_sd)
        model_sd = _model_sd(gauge_obj, fit.hessian, m)
        rating = gauge_obj.ratings(fit.theta)
        if opts.ci == "sandwich":
            _, lower, upper = _interval_from_cov(gauge_obj, fit.theta, sandwich_covariance(counts, fit), z)
        else:
            boot = bootstrap_bt(counts, fit, opts.bootstrap_rounds, opts.seed)
            lower, upper = _quantiles(gauge_obj.ratings(boot), opts.confidence)
        est = _Estimate(rating, lower, upper, model_sd)
    return _board(names, counts, provisional, est, opts, 0)


def _gauge_for(
    counts: PairCounts, names: list[str], opts: LeaderboardOptions
) -> tuple[NDArray[np.bool_], Gauge]:
    """Provisional flags and the gauge for a board."""
    battles = counts.battles_per_model()
    provisional = provisional_models(counts, opts.min_battles)
    anchor_idx = None
    anchor_rating = opts.offset
    if opts.anchor is not None:
        name, value = opts.anchor
        if name not in names or battles[names.index(name)] == 0:
            raise ValueError(f"anchor model {name!r} has no battles")
        anchor_idx, anchor_rating = names.index(name), float(value)
    gauge = make_gauge(
        battles,
        provisional,
        anchor=anchor_idx,
        anchor_rating=anchor_rating,
        mode=opts.gauge,
        offset=opts.offset,
    )
    return provisional, gauge


def _board(
    names: list[str],
    counts: PairCounts,
    provisional: NDArray[np.bool_],
    est: _Estimate,
    opts: LeaderboardOptions,
    dropped: int,
) -> Leaderboard:
    """Rows (with provisional intervals widened and rank (UB)) for every model that has battles."""
    z = z_value(opts.confidence)
    # A provisional model's interval is at least as wide as its model-based (prior-including) normal interval:
    # resampling a model that won its three battles yields the same three wins, which says nothing about its
    # spread.
    lower = np.where(provisional, np.minimum(est.lower, est.rating - z * est.model_sd), est.lower)
    upper = np.where(provisional, np.maximum(est.upper, est.rating + z * est.model_sd), est.upper)
    battles = counts.battles_per_model()
    idx = np.flatnonzero(battles > 0)
    ranks = _ranks(lower, upper, provisional, battles > 0)
    score = counts.score_per_model()
    rows = [
        LeaderboardRow(
            model=names[i],
            rating=float(est.rating[i]),
            lower=float(lower[i]),
            upper=float(upper[i]),
            rank_ub=int(ranks[i]),
            battles=int(battles[i]),
            win_rate=float(score[i] / battles[i]),
            provisional=bool(provisional[i]),
        )
        for i in idx
    ]
    rows.sort(key=lambda r: (-r.rating, r.model))
    return Leaderboard(
        rows=rows,
        style_coefficients=est.style,
        style_intervals=est.style_ci,
        tie_nu=est.tie_nu,
        ci=opts.ci,
        confidence=opts.confidence,
        n_battles=counts.n_battles,
        dropped_battles=dropped,
    )


def _ranks(
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    provisional: NDArray[np.bool_],
    present: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """Rank (UB) among established models; a provisional model is placed against them without displacing them.

    Otherwise a newcomer with three lucky wins, whose wide interval starts above many established models,
    would push all of them down a rank.
    """
    ranks = np.zeros(lower.shape[0], dtype=np.int64)
    established = np.flatnonzero(present & ~provisional)
    ranks[established] = rank_ub(lower[established], upper[established])
    sorted_lower = np.sort(lower[established])
    for i in np.flatnonzero(present & provisional):
        ranks[i] = 1 + established.size - np.searchsorted(sorted_lower, upper[i], side="right")
    return ranks


def _style_estimate(
    a: NDArray[np.intp],
    b: NDArray[np.intp],
    y: NDArray[np.float64],
    features: NDArray[np.float64],
    w: NDArray[np.float64] | None,
    provisional: NDArray[np.bool_],
    style_l2: float,
    style_names: Sequence[str],
    gauge: Gauge,
    opts: LeaderboardOptions,
) -> _Estimate:
    """Style-controlled ratings, intervals and coefficients."""
    m = provisional.shape[0]
    z = z_value(opts.confidence)
    fit = fit_style_bt(
        a, b, y, features, m, weights=w, provisional=provisional, prior_sd=opts.prior_sd, style_l2=style_l2
    )
    model_sd = _model_sd(gauge, fit.hessian, m)
    rating = gauge.ratings(fit.theta)
    if opts.ci == "sandwich":
        cov = gauge.covariance(style_sandwich_covariance(a, b, y, features, fit, w))
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        lower, upper = rating - z * sd[:m] * POINTS_PER_NAT, rating + z * sd[:m] * POINTS_PER_NAT
        beta_lo, beta_hi = fit.beta - z * sd[m:], fit.beta + z * sd[m:]
    else:
        thetas, betas = bootstrap_style_bt(a, b, y, features, fit, opts.bootstrap_rounds, opts.seed, w)
        lower, upper = _quantiles(gauge.ratings(thetas), opts.confidence)
        beta_lo, beta_hi = _quantiles(betas, opts.confidence)
    coef = {name: float(v) for name, v in zip(style_names, fit.beta, strict=True)}
    coef_ci = {
        name: (float(lo), float(hi)) for name, lo, hi in zip(style_names, beta_lo, beta_hi, strict=True)
    }
    return _Estimate(rating, lower, upper, model_sd, coef, coef_ci)
