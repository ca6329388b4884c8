"""A small synthetic arena for the fraud tests: honest Bradley-Terry voters plus hand-built bad ones."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ranking.engine.fraud import VoteArrays

N_MODELS = 12
ELO = np.linspace(-300.0, 300.0, N_MODELS)  # model 0 is the weakest, model 11 the strongest
THETA = ELO * np.log(10.0) / 400.0


@dataclass
class Rows:
    """Column lists that grow one voter at a time; `votes()` freezes them into VoteArrays."""

    rng: np.random.Generator
    columns: dict[str, list[np.ndarray]] = field(default_factory=dict)
    next_voter: int = 0

    def add(self, n: int, outcome_rule: str = "honest", **overrides: object) -> int:
        """One voter with n votes on uniform random pairs; returns the voter id."""
        voter = self.next_voter
        self.next_voter += 1
        a = self.rng.integers(0, N_MODELS, n)
        b = (a + self.rng.integers(1, N_MODELS, n)) % N_MODELS
        if "pairs" in overrides:
            a, b = overrides.pop("pairs")  # type: ignore[misc]
        outcome = outcome_for(self.rng, outcome_rule, a, b, overrides.pop("target", 0))  # type: ignore[arg-type]
        base = {
            "voter": np.full(n, voter),
            "model_a": a,
            "model_b": b,
            "outcome": outcome,
            "network": np.full(n, 100_000 + voter),
            "ip": np.full(n, 200_000 + voter),
            "device": np.full(n, 300_000 + voter),
            "seconds_to_vote": 12.0 * np.exp(0.6 * self.rng.standard_normal(n)),
            "timestamp": voter * 10.0 + np.cumsum(60.0 + self.rng.exponential(600.0, n)),
            "prompt": 1_000_000 * (voter + 1) + np.arange(n),
        }
        for key, value in overrides.items():
            base[key] = np.broadcast_to(np.asarray(value), (n,)).copy()
        for key, value in base.items():
            self.columns.setdefault(key, []).append(np.asarray(value))
        return voter

    def honest(self, voters: int, votes_each: int, **overrides: object) -> list[int]:
        return [self.add(votes_each, "honest", **overrides) for _ in range(voters)]

    def votes(self) -> VoteArrays:
        data = {key: np.concatenate(value) for key, value in self.columns.items()}
        return VoteArrays(n_models=N_MODELS, **data)  # type: ignore[arg-type]


def p_a_wins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(THETA[b] - THETA[a]))


def outcome_for(rng: np.random.Generator, rule: str, a: np.ndarray, b: np.ndarray, target: int) -> np.ndarray:
    """Outcomes for one voter by rule: honest (BT, 20% ties), left, random, copier, contrarian, booster..."""
    n = a.size
    honest = np.where(rng.random(n) < 0.2, 0.5, (rng.random(n) < p_a_wins(a, b)).astype(float))
    favourite = (THETA[a] > THETA[b]).astype(float)
    with_target = (a == target) | (b == target)
    rules = {
        "honest": honest,
        "left": np.ones(n),
        "random": (rng.random(n) < 0.5).astype(float),
        "copier": favourite,
        "contrarian": 1.0 - favourite,
        "booster": np.where(with_target, (a == target).astype(float), honest),
        "suppressor": np.where(with_target, (b == target).astype(float), honest),
    }
    return rules[rule]


def world(seed: int = 7, honest_voters: int = 300, votes_each: int = 60) -> Rows:
    rows = Rows(np.random.default_rng(seed))
    rows.honest(honest_voters, votes_each)
    return rows
