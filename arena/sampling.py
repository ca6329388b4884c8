"""Pair sampling: which two models meet in a battle.

Pure functions over plain data so the rules can be tested without a database:
- each model is drawn in proportion to its weight (a new model's weight is boosted until it has
  enough votes; a model in outage or with weight 0 is never drawn);
- a model with battle targets meets one of them with probability `target_share`;
- two unreleased models are never paired;
- left/right positions are random.

`pair_sample_informed` is the information-aware alternative (ARENA_PAIR_SAMPLING=information): it
prefers pairs whose comparison most reduces ranking uncertainty (close ratings, few battles so far),
while a uniform floor keeps every allowed pair possible.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ranking.engine import INITIAL_RATING, pair_probabilities


@dataclass(frozen=True)
class Candidate:
    id: int
    weight: float
    released: bool = True
    targets: frozenset[int] = field(default_factory=frozenset)


class NoPairAvailable(Exception):
    pass


def _draw(pool: Sequence[Candidate], rng: random.Random) -> Candidate:
    return rng.choices(pool, weights=[c.weight for c in pool], k=1)[0]


def _partners(first: Candidate, pool: Sequence[Candidate]) -> list[Candidate]:
    return [c for c in pool if c.id != first.id and (first.released or c.released)]


def pair_sample(
    candidates: Sequence[Candidate], *, rng: random.Random, target_share: float = 0.5
) -> tuple[Candidate, Candidate]:
    """Return (left, right). Raises NoPairAvailable when no valid pair exists."""
    pool = [c for c in candidates if c.weight > 0]
    firsts = [c for c in pool if _partners(c, pool)]
    if not firsts:
        raise NoPairAvailable("fewer than two models can battle right now")
    first = _draw(firsts, rng)
    partners = _partners(first, pool)
    targeted = [c for c in partners if c.id in first.targets]
    if targeted and rng.random() < target_share:
        partners = targeted
    second = _draw(partners, rng)
    return (first, second) if rng.random() < 0.5 else (second, first)


def pair_sample_informed(
    candidates: Sequence[Candidate],
    *,
    rng: random.Random,
    ratings: Mapping[int, float],
    pair_battles: Mapping[tuple[int, int], int],
    floor: float = 0.2,
) -> tuple[Candidate, Candidate]:
    """Draw a pair from the ranking engine's information-aware pair probabilities, scaled by weights."""
    pool = [c for c in candidates if c.weight > 0]
    m = len(pool)
    counts = np.zeros((m, m))
    allowed = np.ones((m, m), dtype=bool)
    for i, ci in enumerate(pool):
        for j, cj in enumerate(pool):
            counts[i, j] = pair_battles.get((min(ci.id, cj.id), max(ci.id, cj.id)), 0)
            allowed[i, j] = i != j and (ci.released or cj.released)
    if m < 2 or not allowed.any():
        raise NoPairAvailable("fewer than two models can battle right now")
    probs = pair_probabilities(
        [ratings.get(c.id, INITIAL_RATING) for c in pool], pair_counts=counts, allowed=allowed, floor=floor
    )
    weights = np.array([c.weight for c in pool])
    iu = np.triu_indices(m, 1)
    p = probs[iu] * weights[iu[0]] * weights[iu[1]]
    k = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
    first, second = pool[iu[0][min(k, len(p) - 1)]], pool[iu[1][min(k, len(p) - 1)]]
    return (first, second) if rng.random() < 0.5 else (second, first)
