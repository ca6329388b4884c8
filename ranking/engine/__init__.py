"""Arena's ranking engine: pure numpy/scipy maths, no Django.

Arrays in, arrays and dataclasses out. Battles are three aligned arrays: `model_a` and `model_b` (integer
model indices) and `outcome` (1 = A won, 0 = B won, 0.5 = tie or both-bad), optionally with weights,
timestamps and style features. The usual entry points:

* `read_battles(path)` -> `Battles` from a public dump (JSON array or JSON lines);
* `leaderboard(a, b, outcome, models, ...)` -> `Leaderboard` (Bradley-Terry, gauge, 95% CIs by sandwich or
  batched bootstrap, provisional flags, rank (UB), optional style control or Davidson ties);
* `online_elo(...)`; `pair_probabilities(...)` for information-aware pair sampling.

Lower-level pieces (`aggregate_pairs`, `fit_bt`, `sandwich_covariance`, `bootstrap_bt`, `make_gauge`, ...) are
exported for callers that keep their own aggregates (the leaderboard task keeps incremental pair counts).
"""

from .bt import BTFit, bootstrap_bt, fit_bt, fit_bt_batch, model_covariance, sandwich_covariance, z_value
from .dump import WINNER_OUTCOMES, Battles, DumpError, drop_battles, in_category, parse_battles, read_battles
from .elo import online_elo
from .gauge import (
    DEFAULT_MIN_BATTLES,
    DEFAULT_PRIOR_SD,
    Gauge,
    GaugeMode,
    make_gauge,
    penalty_matrix,
    provisional_models,
)
from .leaderboard import (
    CIMethod,
    Leaderboard,
    LeaderboardOptions,
    LeaderboardRow,
    TieModel,
    leaderboard,
    leaderboard_from_counts,
)
from .pairs import OUTCOME_CELLS, PairCounts, aggregate_pairs, ipw_weights, reweight_pairs, validate_battles
from .ranks import rank_ub
from .sampling import information_gain, model_based_covariance, pair_probabilities, sample_pairs
from .scale import BASE, INITIAL_RATING, POINTS_PER_NAT, SCALE, to_points, to_theta
from .style import (
    DEFAULT_STYLE_L2,
    STYLE_FEATURES,
    StyleFit,
    bootstrap_style_bt,
    fit_style_bt,
    style_contrasts,
    style_counts_from_metadata,
    style_features_from_metadata,
    style_sandwich_covariance,
)
from .ties import TieFit, bootstrap_davidson, davidson_sandwich_covariance, fit_davidson

__all__ = [
    "BASE",
    "DEFAULT_MIN_BATTLES",
    "DEFAULT_PRIOR_SD",
    "DEFAULT_STYLE_L2",
    "INITIAL_RATING",
    "OUTCOME_CELLS",
    "POINTS_PER_NAT",
    "SCALE",
    "STYLE_FEATURES",
    "WINNER_OUTCOMES",
    "BTFit",
    "Battles",
    "CIMethod",
    "DumpError",
    "Gauge",
    "GaugeMode",
    "Leaderboard",
    "LeaderboardOptions",
    "LeaderboardRow",
    "PairCounts",
    "StyleFit",
    "TieFit",
    "TieModel",
    "aggregate_pairs",
    "bootstrap_bt",
    "bootstrap_davidson",
    "bootstrap_style_bt",
    "davidson_sandwich_covariance",
    "drop_battles",
    "fit_bt",
    "fit_bt_batch",
    "fit_davidson",
    "fit_style_bt",
    "in_category",
    "information_gain",
    "ipw_weights",
    "leaderboard",
    "leaderboard_from_counts",
    "make_gauge",
    "model_based_covariance",
    "model_covariance",
    "online_elo",
    "pair_probabilities",
    "parse_battles",
    "penalty_matrix",
    "provisional_models",
    "rank_ub",
    "read_battles",
    "reweight_pairs",
    "sample_pairs",
    "sandwich_covariance",
    "style_contrasts",
    "style_counts_from_metadata",
    "style_features_from_metadata",
    "style_sandwich_covariance",
    "to_points",
    "to_theta",
    "validate_battles",
    "z_value",
]
