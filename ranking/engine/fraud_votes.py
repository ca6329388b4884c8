"""Votes as columnar arrays, and the crowd model the fraud signals compare each voter against.

Pure numpy/scipy, no Django: the same arrays come from the database (ranking.services) or from a public
battle dump (ranking.engine.fraud.votes_from_records), so the offline scan and the live sweep share code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .bt import fit_bt
from .gauge import provisional_models
from .pairs import aggregate_pairs

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

UNKNOWN = -1


@dataclass(frozen=True)
class VoteArrays:
    """One row per vote. Integer ids are opaque; -1 means unknown (NaN for the float columns).

    Position convention: the UI shows model_a on the left, so outcome 1.0 is a left pick, 0.0 a right pick
    and 0.5 a tie (both-bad included). `network` is a salted hash bucket of the /24 (IPv4) or /48 (IPv6)
    prefix, `ip` of the full address and `device` of a browser fingerprint; `prompt` hashes the prompt text.
    `seconds_to_vote` counts from both outputs being complete to the click.
    """

    voter: IntArray
    model_a: IntArray
    model_b: IntArray
    outcome: FloatArray
    n_models: int
    network: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    ip: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    device: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    seconds_to_vote: FloatArray = field(default_factory=lambda: np.empty(0))
    timestamp: FloatArray = field(default_factory=lambda: np.empty(0))
    prompt: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    voter_ids: IntArray = field(init=False)
    voter_index: IntArray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.voter)
        for name in ("voter", "model_a", "model_b", "network", "ip", "device", "prompt"):
            object.__setattr__(self, name, _int_column(getattr(self, name), n, name))
        for name in ("outcome", "seconds_to_vote", "timestamp"):
            object.__setattr__(self, name, _float_column(getattr(self, name), n, name))
        self._validate()
        voter_ids, voter_index = np.unique(self.voter, return_inverse=True)
        object.__setattr__(self, "voter_ids", voter_ids.astype(np.int64))
        object.__setattr__(self, "voter_index", voter_index.astype(np.int64).reshape(-1))

    def _validate(self) -> None:
        if self.n_models < 1:
            raise ValueError("n_models must be positive")
        for side in (self.model_a, self.model_b):
            if side.size and (side.min() < 0 or side.max() >= self.n_models):
                raise ValueError("model ids must lie in [0, n_models)")
        if np.any(self.model_a == self.model_b):
            raise ValueError("a battle needs two different models")
        if not np.all(np.isin(self.outcome, (0.0, 0.5, 1.0))):
            raise ValueError("outcome must be 1 (A/left), 0 (B/right) or 0.5 (tie)")

    @property
    def n_votes(self) -> int:
        return int(self.voter.size)

    @property
    def n_voters(self) -> int:
        return int(self.voter_ids.size)

    @property
    def decisive(self) -> BoolArray:
        return self.outcome != 0.5

    def subset(self, mask: BoolArray) -> VoteArrays:
        """The votes where mask is true (voter ids are re-densified for the subset)."""
        return VoteArrays(
            voter=self.voter[mask],
            model_a=self.model_a[mask],
            model_b=self.model_b[mask],
            outcome=self.outcome[mask],
            n_models=self.n_models,
            network=self.network[mask],
            ip=self.ip[mask],
            device=self.device[mask],
            seconds_to_vote=self.seconds_to_vote[mask],
            timestamp=self.timestamp[mask],
            prompt=self.prompt[mask],
        )


def _int_column(values: npt.ArrayLike, n: int, name: str) -> IntArray:
    array = np.asarray(values, dtype=np.int64).reshape(-1)
    if array.size == 0 and n:
        return np.full(n, UNKNOWN, dtype=np.int64)
    if array.size != n:
        raise ValueError(f"{name} has {array.size} rows, expected {n}")
    return array


def _float_column(values: npt.ArrayLike, n: int, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0 and n:
        return np.full(n, np.nan)
    if array.size != n:
        raise ValueError(f"{name} has {array.size} rows, expected {n}")
    return array


def crowd_theta(votes: VoteArrays, mask: BoolArray | None = None) -> FloatArray:
    """Bradley-Terry strengths (natural-log units) fitted by the ranking engine on decisive votes in `mask`.

    The signals judge decisive votes, so they need P(a beats b | someone won). The leaderboard convention
    (a tie is half a win each) answers a different question: with ~30% ties it shrinks every rating gap,
    which makes honest voters look too predictable and random clickers look honest. Models with too few
    battles get the engine's provisional prior. Signals only use win probabilities, so the gauge is moot.
    """
    keep = votes.decisive if mask is None else mask & votes.decisive
    counts = aggregate_pairs(votes.model_a[keep], votes.model_b[keep], votes.outcome[keep], votes.n_models)
    fit = fit_bt(counts, provisional_models(counts))
    return fit.theta - fit.theta.mean()


def win_probability(theta: FloatArray, winner: IntArray, loser: IntArray) -> FloatArray:
    """Crowd probability that `winner` beats `loser` in a decisive vote."""
    return 1.0 / (1.0 + np.exp(theta[loser] - theta[winner]))
