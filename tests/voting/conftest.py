"""Fixtures for the vote-integrity tests: a browser session that owns ready battles, a fresh address per test
(rate counters live in the shared Redis for the whole run), and tally snapshots."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from arena.models import Battle, Generation, ModelEntry
from ranking.models import PairTally
from ranking.tallies import tally_rebuild
from voting.models import Voter

_ADDRESSES = itertools.count(1)


def fresh_ip() -> str:
    """An address no other test of this run used, so per-IP and per-network counters start at zero."""
    n = next(_ADDRESSES) + 1000 * (os.getpid() % 200)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def session_voter(client: Client, **fields: object) -> Voter:
    """A voter remembered in the client's session, as the site does on a first visit."""
    voter = Voter.objects.create(session_hash=f"s{Voter.objects.count()}", **fields)
    session = client.session
    session["voter_id"] = voter.id
    session.save()
    return voter


def ready_battle(
    voter: Voter,
    model_a: ModelEntry,
    model_b: ModelEntry,
    *,
    prompt: str = "Why is the sky blue?",
    out_a: str = "Rayleigh scattering.",
    out_b: str = "Because of the air.",
    waited: float = 20.0,
) -> Battle:
    """A battle whose two answers finished `waited` seconds ago (the time-to-vote starts there)."""
    battle = Battle.objects.create(
        voter=voter,
        model_a=model_a,
        model_b=model_b,
        conversation=[prompt],
        status=Battle.Status.READY,
        ready_at=timezone.now() - timedelta(seconds=waited),
    )
    Generation.objects.create(battle=battle, turn=0, side="a", model=model_a, status="done", output=out_a)
    Generation.objects.create(battle=battle, turn=0, side="b", model=model_b, status="done", output=out_b)
    return battle


@pytest.fixture
def pair(make_model: Callable[..., ModelEntry]) -> tuple[ModelEntry, ModelEntry]:
    return make_model(), make_model()


@pytest.fixture
def ip() -> str:
    return fresh_ip()


def tallies() -> dict[tuple, tuple[int, int, int]]:
    rows = PairTally.objects.values_list(
        "modality", "category", "model_lo_id", "model_hi_id", "lo_won", "hi_won", "ties"
    )
    return {r[:4]: r[4:] for r in rows if any(r[4:])}


def tallies_match_counted_votes() -> bool:
    """The incrementally kept tallies equal a rebuild from the counted votes."""
    kept = tallies()
    tally_rebuild()
    return kept == tallies()


def refreshes(callbacks: list) -> list[tuple[str, ...]]:
    """The leaderboard refreshes among captured on-commit callbacks (modalities of each)."""
    from voting.integrity import LeaderboardRefresh

    return [c.modalities for c in callbacks if isinstance(c, LeaderboardRefresh)]
