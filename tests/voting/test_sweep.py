"""The periodic fraud sweep through the database: each signal's data reaches the engine, bad voters are
flagged through the audited services, honest ones are left alone, and a refresh is queued only on change."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from arena.celery import app
from arena.models import AuditEntry
from ranking.models import LeaderboardSnapshot
from tests.conftest import wait_for
from tests.voting.conftest import refreshes, tallies_match_counted_votes
from tests.voting.world import flagged_share, honest_twin, left_bot, world, world_models, world_store
from voting import integrity
from voting.integrity import fraud_sweep
from voting.models import Vote, Voter
from voting.tasks import fraud_sweep_task


@pytest.fixture
def models(db):
    return world_models()


def has_reason(reasons: list[str], expected: str) -> bool:
    """`expected` names a signal, optionally with its detail ("ring:net-net77"); details it omits may vary."""
    return any(r == expected or r.startswith(f"{expected}:") for r in reasons)


def small_world(seed: int = 3):
    rows = world(seed=seed, honest_voters=60, votes_each=20)
    honest = list(range(rows.next_voter))
    return rows, honest


def test_a_sweep_flags_an_always_left_voter_and_not_an_honest_one(models, django_capture_on_commit_callbacks):
    rows, honest = small_world()
    bot, twin = left_bot(rows, 60), honest_twin(rows, 60)
    voters = world_store(rows, models)
    with django_capture_on_commit_callbacks() as callbacks:
        result = fraud_sweep()
    assert voters[bot].id in result.flagged_voters and voters[twin].id not in result.flagged_voters
    assert flagged_share(voters, [*honest, twin]) <= 0.05
    bot_voter, twin_voter = Voter.objects.get(id=voters[bot].id), Voter.objects.get(id=voters[twin].id)
    assert bot_voter.flagged and "position_bias" in bot_voter.flag_reasons
    assert bot_voter.risk_score > 0.9 > 0.1 > twin_voter.risk_score
    assert not Vote.objects.filter(voter=bot_voter, counted=True).exists()
    assert (
        Vote.objects.filter(voter=bot_voter)
        .first()
        .exclusion_reason.startswith("voter flagged: position_bias")
    )
    assert Vote.objects.filter(voter=twin_voter, counted=False).count() == 0
    entry = AuditEntry.objects.get(action="voter.flag", target_id=str(bot_voter.id))
    assert entry.actor_id is None and entry.rule.startswith("fraud_sweep:") and "position_bias" in entry.rule
    assert refreshes(callbacks) == [("text",)]
    assert tallies_match_counted_votes()

    with django_capture_on_commit_callbacks() as again:
        second = fraud_sweep()
    assert not second.changed and refreshes(again) == [], "a second sweep finds nothing new to do"


def test_the_sweep_finds_each_kind_of_bad_voter_through_the_database(models):
    rows = world(seed=1, honest_voters=120, votes_each=30)
    honest = list(range(rows.next_voter))
    kinds = {
        "position_bias": [rows.add(60, "left")],
        "target_concentration:m0": [rows.add(120, "booster", target=0)],
        "bot_speed": [rows.add(40, seconds_to_vote=1.0)],
        "crowd_likelihood": [rows.add(150, "random")],
        "ring:net-net77": [rows.add(20, "booster", target=2, network=77, ip=7700 + k) for k in range(12)],
        "ring_device:device-dev88": [
            rows.add(20, "booster", target=3, device=88, ip=8800 + k) for k in range(12)
        ],
        "rate": [rows.add(130, timestamp=np.arange(130) * 60.0)],
        "repeated_prompts": [rows.add(12, prompt=np.full(12, 42))],
    }
    asker = rows.add(10, prompt=np.r_[np.full(5, 4242), np.arange(5) + 9_000_000])
    voters = world_store(rows, models)
    result = fraud_sweep()
    for reason, members in kinds.items():
        for member in members:
            flagged = Voter.objects.get(id=voters[member].id)
            assert flagged.flagged and has_reason(flagged.flag_reasons, reason), (
                reason,
                flagged.flag_reasons,
            )
    assert flagged_share(voters, honest) <= 0.05
    # Repeating one prompt a few times only leaves the repeats out; the voter is not flagged.
    asker_votes = Vote.objects.filter(voter=voters[asker]).order_by("created_at")
    assert not Voter.objects.get(id=voters[asker].id).flagged
    held = [v for v in asker_votes if not v.counted]
    assert len(held) == 2 and all(v.prompt_hash == "4242" for v in held)
    assert held[0].exclusion_reason.startswith("fraud sweep:")
    assert set(result.excluded_votes) >= {v.id for v in held}
    assert tallies_match_counted_votes()


def test_a_voter_staff_cleared_is_not_flagged_again(models, admin_user):
    rows, _ = small_world()
    bot = left_bot(rows)
    voters = world_store(rows, models)
    assert voters[bot].id in fraud_sweep().flagged_voters
    integrity.voter_unflag(voter_id=voters[bot].id, reason="a real person, checked", actor_id=admin_user.id)
    assert voters[bot].id not in fraud_sweep().flagged_voters
    cleared = Voter.objects.get(id=voters[bot].id)
    assert cleared.trusted and not cleared.flagged and cleared.risk_score > 0.9, "risk stays visible"
    assert not Vote.objects.filter(voter=cleared, counted=False).exists()


def test_votes_held_back_at_vote_time_are_released_or_folded_into_a_flag(models):
    rows, honest = small_world()
    bot = left_bot(rows)
    voters = world_store(rows, models)
    twin_votes = list(Vote.objects.filter(voter=voters[honest[0]]).values_list("id", flat=True)[:2])
    bot_vote = Vote.objects.filter(voter=voters[bot]).values_list("id", flat=True).first()
    Vote.objects.filter(id__in=[*twin_votes, bot_vote]).update(
        counted=False, exclusion_reason="vote-time risk: rate"
    )
    from ranking.tallies import tally_rebuild

    tally_rebuild()
    result = fraud_sweep()
    assert sorted(result.restored_votes) == sorted(twin_votes)
    assert Vote.objects.filter(id__in=twin_votes, counted=True).count() == 2
    released = AuditEntry.objects.filter(action="vote.restore", rule="fraud_sweep:cleared")
    assert sorted(int(e.target_id) for e in released) == sorted(twin_votes)
    assert Vote.objects.get(id=bot_vote).exclusion_reason.startswith("voter flagged:")
    assert tallies_match_counted_votes()


def test_a_sweep_already_running_makes_a_second_one_return_at_once(models):
    assert cache.add("arena:fraud-sweep:running", 1, timeout=60)
    try:
        assert fraud_sweep().skipped
    finally:
        cache.delete("arena:fraud-sweep:running")


def test_the_sweep_reads_the_votes_in_one_query_however_many_there_are(models):
    rows, _ = small_world(seed=11)
    world_store(rows, models)
    with CaptureQueriesContext(connection) as queries:
        result = fraud_sweep()
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "voting_vote"' in q["sql"]]
    assert result.scanned_votes == rows.votes().n_votes
    assert len(queries) <= 6 + 12 * len(result.flagged_voters), [
        q["sql"][:80] for q in queries.captured_queries
    ]
    assert len(reads) <= 1 + 3 * len(result.flagged_voters)


def test_the_sweep_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["fraud-sweep"]
    assert entry["task"] == "voting.tasks.fraud_sweep_task" and entry["schedule"] == 900.0
    assert entry["task"] in app.tasks


@pytest.mark.django_db(transaction=True)
def test_the_sweep_task_on_the_real_worker_flags_and_the_board_is_recomputed(worker):
    models = world_models()
    rows, _ = small_world()
    bot = left_bot(rows)
    voters = world_store(rows, models)
    assert not LeaderboardSnapshot.objects.exists()
    fraud_sweep_task.apply_async(queue="ranking")
    wait_for(lambda: Voter.objects.get(id=voters[bot].id).flagged, timeout=60)
    wait_for(lambda: LeaderboardSnapshot.objects.filter(modality="text").exists(), timeout=60)
    assert tallies_match_counted_votes()
