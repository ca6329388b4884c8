"""A small arena with history: battles voted through the real vote service, some of them not counted."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from arena.models import Battle, Generation, ModelEntry
from voting.models import Vote, Voter
from voting.services import vote_cast

PROMPTS = [
    "Why is the sky blue?",
    "Write a python function that reverses a list.",
    "Plan a weekend trip to the mountains.",
    "¿Cuál es la capital de Francia y por qué?",
]
ANSWERS = [
    "## Short answer\n\nBecause of **Rayleigh** scattering.",
    "Here you go:\n\n- step one\n- step two\n\n1. done",
    "Plain prose without any markdown at all, but rather long " * 3,
    "Sure.",
]


def ready_battle(
    voter: Voter, a: ModelEntry, b: ModelEntry, prompts: list[str], answers: dict[str, list[str]]
) -> Battle:
    battle = Battle.objects.create(
        voter=voter,
        model_a=a,
        model_b=b,
        conversation=prompts,
        status=Battle.Status.READY,
        ready_at=timezone.now() - timedelta(seconds=30),
    )
    for side, model in (("a", a), ("b", b)):
        for turn in range(len(prompts)):
            Generation.objects.create(
                battle=battle,
                turn=turn,
                side=side,
                model=model,
                status="done",
                output=answers[side][turn],
                output_tokens=len(answers[side][turn].split()),
            )
    return battle


@pytest.fixture
def arena_history(make_model) -> Callable[..., list[Vote]]:
    """`arena_history(n)` makes n voted battles among four text models and one image battle pair."""

    def make(n: int = 120, seed: int = 7) -> list[Vote]:
        rng = random.Random(seed)
        models = [make_model() for _ in range(4)]
        strength = {m.id: i for i, m in enumerate(models)}  # later models win more often
        voters = [Voter.objects.create(session_hash=f"{i}" * 64, ip_hash="ip" * 32) for i in range(5)]
        image = [make_model(modality="image"), make_model(modality="image")]
        votes = []
        for i in range(n):
            a, b = rng.sample(models, 2) if i % 10 else image
            turns = 2 if i % 7 == 0 else 1
            prompts = [rng.choice(PROMPTS) for _ in range(turns)]
            answers = {side: [rng.choice(ANSWERS) for _ in range(turns)] for side in "ab"}
            if i % 13 == 0:
                answers["a"][0] = f"As {a.display_name}, I would say hello."  # names itself: not counted
            battle = ready_battle(rng.choice(voters), a, b, prompts, answers)
            battle.modality = a.modality
            battle.save(update_fields=["modality"])
            edge = strength.get(b.id, 0) - strength.get(a.id, 0)
            roll = rng.random() + 0.15 * edge
            choice = "a" if roll < 0.4 else "b" if roll > 0.6 else rng.choice(["tie", "both_bad"])
            votes.append(vote_cast(code=battle.code, voter=battle.voter, choice=choice))
        return votes

    return make
