"""The ranking engine's synthetic arena (tests/ranking/fraud_world.py) stored as real voters, battles and
votes, so the sweep reads it back through the database exactly as it reads the live site."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.db import connection
from django.utils import timezone

from arena.models import Battle, ModelEntry
from ranking.tallies import tally_rebuild
from tests.ranking.fraud_world import N_MODELS, Rows, world
from voting.metadata import conv_metadata
from voting.models import Vote, Voter

_CHOICE = {1.0: "a", 0.0: "b", 0.5: "tie"}

__all__ = ["N_MODELS", "Rows", "world", "world_models", "world_store"]


def world_models() -> list[ModelEntry]:
    """Model i of the world is slug m<i>, so reasons read like the engine's own tests."""
    return ModelEntry.objects.bulk_create(
        ModelEntry(slug=f"m{i}", display_name=f"M{i}", backend_kind="demo") for i in range(N_MODELS)
    )


def world_store(rows: Rows, models: list[ModelEntry], days_ago: float = 5.0) -> dict[int, Voter]:
    """Write every vote of the world; returns world voter id -> Voter. Tallies are rebuilt to match."""
    votes = rows.votes()
    ids = sorted(set(votes.voter.tolist()))
    voters = dict(zip(ids, Voter.objects.bulk_create(Voter(session_hash=f"w{i}") for i in ids), strict=True))
    start = timezone.now() - timedelta(days=days_ago)
    # Every stored vote carries its answers' style metadata; the style-controlled board reads it.
    metadata = [
        conv_metadata(["p"], ["A short answer."], ["A longer answer, with **bold** and\n- a list"]),
        conv_metadata(["p"], ["A longer answer, with **bold** and\n- a list"], ["A short answer."]),
    ]
    battles = Battle.objects.bulk_create(
        Battle(
            voter=voters[int(votes.voter[i])],
            model_a=models[int(votes.model_a[i])],
            model_b=models[int(votes.model_b[i])],
            conversation=["p"],
            status=Battle.Status.VOTED,
        )
        for i in range(votes.n_votes)
    )
    stored = Vote.objects.bulk_create(
        Vote(
            battle=battles[i],
            voter=voters[int(votes.voter[i])],
            choice=_CHOICE[float(votes.outcome[i])],
            seconds_to_vote=float(votes.seconds_to_vote[i]),
            ip_hash=f"ip{votes.ip[i]}",
            network_hash=f"net{votes.network[i]}",
            fingerprint_hash=f"dev{votes.device[i]}",
            prompt_hash=f"{votes.prompt[i]}"[-16:],
            conv_metadata=metadata[i % 2],
        )
        for i in range(votes.n_votes)
    )
    # created_at is auto_now_add, so the world's times are written afterwards.
    times = [
        (start + timedelta(seconds=s), v.id) for v, s in zip(stored, votes.timestamp.tolist(), strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.executemany("UPDATE voting_vote SET created_at = %s WHERE id = %s", times)
    tally_rebuild()
    return voters


def honest_twin(rows: Rows, n: int) -> int:
    """An honest voter with as many votes as the attacker it is compared with."""
    return rows.add(n, "honest")


def left_bot(rows: Rows, n: int = 60) -> int:
    return rows.add(n, "left")


def flagged_share(voters: dict[int, Voter], honest: list[int]) -> float:
    flagged = set(Voter.objects.filter(flagged=True).values_list("id", flat=True))
    return float(np.mean([voters[v].id in flagged for v in honest]))
