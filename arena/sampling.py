"""Pair sampling: which two models meet in a battle.

Pure functions over plain data so the rules can be tested without a database:
- each model is drawn in proportion to its weight (a new model's weight is boosted until it has
  enough votes; a model in outage or with weight 0 is never drawn);
- a model with battle targets meets one of them with probability `target_share`;
- two unreleased models are never paired;
- left/right positions are random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field


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
