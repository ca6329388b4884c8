"""Pair sampling rules, on plain data."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from arena.sampling import Candidate, NoPairAvailable, pair_sample, pair_sample_informed


def draw(candidates, n=4000, seed=1, **kw):
    rng = random.Random(seed)
    return [pair_sample(candidates, rng=rng, **kw) for _ in range(n)]


def test_the_two_sides_are_always_different_models():
    pairs = draw([Candidate(1, 1.0), Candidate(2, 1.0), Candidate(3, 1.0)])
    assert all(a.id != b.id for a, b in pairs)


def test_models_appear_in_proportion_to_their_weight():
    pairs = draw([Candidate(1, 3.0), Candidate(2, 1.0), Candidate(3, 1.0), Candidate(4, 1.0)], n=8000)
    seen = Counter(c.id for pair in pairs for c in pair)
    assert seen[1] > 1.5 * seen[2]


def test_positions_are_randomised():
    pairs = draw([Candidate(1, 1.0), Candidate(2, 1.0)], n=2000)
    left = Counter(a.id for a, _ in pairs)
    assert 850 < left[1] < 1150


def test_zero_weight_models_are_never_drawn():
    pairs = draw([Candidate(1, 1.0), Candidate(2, 1.0), Candidate(3, 0.0)])
    assert all(3 not in (a.id, b.id) for a, b in pairs)


def test_two_unreleased_models_are_never_paired():
    pool = [Candidate(1, 1.0, released=False), Candidate(2, 1.0, released=False), Candidate(3, 1.0)]
    pairs = draw(pool)
    assert all(a.released or b.released for a, b in pairs)
    with pytest.raises(NoPairAvailable):
        pair_sample(pool[:2], rng=random.Random(0))


def test_battle_targets_are_preferred():
    pool = [Candidate(1, 1.0, targets=frozenset({2})), *(Candidate(i, 1.0) for i in range(2, 12))]
    pairs = draw(pool, n=6000, target_share=0.8)
    with_one = [frozenset((a.id, b.id)) for a, b in pairs if 1 in (a.id, b.id)]
    share = sum(p == frozenset({1, 2}) for p in with_one) / len(with_one)
    assert share > 0.3  # uniform would be about 0.1


def test_fewer_than_two_models_cannot_battle():
    with pytest.raises(NoPairAvailable):
        pair_sample([Candidate(1, 1.0)], rng=random.Random(0))


def test_information_aware_sampling_prefers_close_under_sampled_pairs_and_keeps_every_pair():
    pool = [Candidate(i, 1.0) for i in range(1, 6)]
    ratings = {1: 1200.0, 2: 1195.0, 3: 1000.0, 4: 800.0, 5: 795.0}
    battles = {
        (1, 2): 5,
        (4, 5): 400,
        (1, 3): 400,
        (2, 3): 400,
        (3, 4): 400,
        (1, 4): 400,
        (1, 5): 400,
        (2, 4): 400,
        (2, 5): 400,
        (3, 5): 400,
    }
    rng = random.Random(3)
    seen = Counter(
        frozenset((a.id, b.id))
        for a, b in (
            pair_sample_informed(pool, rng=rng, ratings=ratings, pair_battles=battles) for _ in range(1000)
        )
    )
    assert len(seen) == 10, "every pair must stay possible"
    assert seen[frozenset({1, 2})] == max(seen.values()), "the close, rarely compared pair comes first"
    assert seen[frozenset({1, 2})] > 2 * seen[frozenset({4, 5})]
