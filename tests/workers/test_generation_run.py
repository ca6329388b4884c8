"""generation_run and its companions, called directly: claim, idempotence, failure, outage, sweeper."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from arena.disclosure import voter_failure_text
from arena.models import Battle, Generation, ModelEntry
from arena.sampling import NoPairAvailable, pair_sample
from arena.selectors import battle_state, model_candidates
from workers.services import (
    _chunk,
    _Progress,
    battle_status_sync,
    conversation_messages,
    generation_run,
    generation_sweep,
    model_probe,
)


@pytest.fixture
def battle(make_model, voter) -> Battle:
    a, b = make_model(), make_model()
    battle = Battle.objects.create(voter=voter, model_a=a, model_b=b, conversation=["Explain tides."])
    for side, model in (("a", a), ("b", b)):
        Generation.objects.create(battle=battle, turn=0, side=side, model=model)
    return battle


def test_running_a_generation_twice_does_the_work_once(battle):
    gen = battle.generations.get(side="a")
    generation_run(generation_id=gen.id)
    gen.refresh_from_db()
    first_output, first_finish = gen.output, gen.finished_at
    assert gen.status == "done" and gen.attempts == 1 and first_output
    assert gen.started_at <= gen.first_chunk_at <= gen.finished_at
    assert gen.output_tokens and gen.prompt_tokens
    generation_run(generation_id=gen.id)
    gen.refresh_from_db()
    assert (gen.attempts, gen.output, gen.finished_at) == (1, first_output, first_finish)


def test_the_battle_becomes_ready_only_when_both_sides_are_done(battle):
    a, b = battle.generations.order_by("side")
    generation_run(generation_id=a.id)
    battle.refresh_from_db()
    assert battle.status == "generating" and battle.ready_at is None
    generation_run(generation_id=b.id)
    battle.refresh_from_db()
    assert battle.status == "ready" and battle.ready_at is not None


def test_a_failing_model_fails_its_side_and_goes_into_outage_once_its_probe_fails_too(
    make_model, voter, settings
):
    settings.ARENA_OUTAGE_AFTER_FAILURES = 2
    bad = make_model(
        slug="flaky-x", display_name="Flaky X", backend_config={"persona": "concise", "fail_rate": 1}
    )
    good = make_model()
    for _ in range(2):
        battle = Battle.objects.create(voter=voter, model_a=bad, model_b=good, conversation=["hi"])
        gen = Generation.objects.create(battle=battle, turn=0, side="a", model=bad)
        generation_run(generation_id=gen.id)
        gen.refresh_from_db()
        battle.refresh_from_db()
        assert gen.status == "failed" and gen.failure_kind == "unavailable"
        assert "failed on purpose" in gen.error_detail, "staff keep the backend's words"
        assert gen.error == voter_failure_text("unavailable"), "the voter reads the neutral text"
        assert battle.status == "failed"
    bad.refresh_from_db()
    assert not bad.in_outage and bad.consecutive_failures == 2, "the streak asks for a probe first"
    ok, _ = model_probe(model_id=bad.id, confirm=True)  # the probe the streak asked for (no worker here)
    bad.refresh_from_db()
    assert not ok and bad.in_outage and bad.consecutive_failures == 2
    with pytest.raises(NoPairAvailable):
        pair_sample(model_candidates("text"), rng=random.Random(0))


def test_a_successful_probe_takes_a_model_out_of_outage(make_model):
    model = make_model(outage_since=timezone.now(), consecutive_failures=5)
    ok, text = model_probe(model_id=model.id)
    model.refresh_from_db()
    assert ok and text and not model.in_outage and model.consecutive_failures == 0


def test_a_failed_probe_keeps_the_model_in_outage(make_model):
    model = make_model(outage_since=timezone.now(), backend_config={"persona": "concise", "fail_rate": 1})
    ok, error = model_probe(model_id=model.id)
    model.refresh_from_db()
    assert not ok and "failed" in error and model.in_outage


def test_a_confirming_probe_that_the_model_answers_keeps_it_in_sampling(make_model):
    model = make_model(consecutive_failures=7)
    ok, _ = model_probe(model_id=model.id, confirm=True)
    model.refresh_from_db()
    assert ok and not model.in_outage and model.consecutive_failures == 0


def test_a_misconfigured_model_fails_with_a_message_that_hides_the_config(make_model, voter):
    broken = make_model(backend_kind="demo", backend_config={"persona": "nonexistent-persona"})
    battle = Battle.objects.create(voter=voter, model_a=broken, model_b=make_model(), conversation=["hi"])
    gen = Generation.objects.create(battle=battle, turn=0, side="a", model=broken)
    generation_run(generation_id=gen.id)
    gen.refresh_from_db()
    assert gen.status == "failed" and gen.error == voter_failure_text("unavailable")
    assert "misconfigured" in gen.error_detail and "nonexistent-persona" in gen.error_detail
    state = battle_state(battle)
    assert "persona" not in json.dumps(state), "the voter's JSON holds the neutral text only"


def test_each_side_sees_its_own_earlier_answers(battle):
    a = battle.generations.get(side="a")
    Generation.objects.filter(id=a.id).update(status="done", output="Tides come from the moon.")
    battle.conversation = ["Explain tides.", "Shorter please."]
    battle.save()
    nxt = Generation.objects.create(battle=battle, turn=1, side="a", model=a.model)
    assert conversation_messages(nxt) == [
        {"role": "user", "content": "Explain tides."},
        {"role": "assistant", "content": "Tides come from the moon."},
        {"role": "user", "content": "Shorter please."},
    ]


def test_the_sweeper_requeues_a_stuck_row_then_fails_it_when_attempts_run_out(battle, settings):
    settings.ARENA_GENERATION_MAX_ATTEMPTS = 2
    gen = battle.generations.get(side="a")
    long_ago = timezone.now() - timedelta(hours=1)
    Generation.objects.filter(id=gen.id).update(status="running", started_at=long_ago, attempts=1)
    assert generation_sweep() >= 1
    gen.refresh_from_db()
    assert gen.status == "queued"
    Generation.objects.filter(id=gen.id).update(status="running", started_at=long_ago, attempts=2)
    generation_sweep()
    gen.refresh_from_db()
    battle.refresh_from_db()
    assert gen.status == "failed" and "stopped" in gen.error_detail
    assert gen.error == voter_failure_text(gen.failure_kind) != ""
    assert battle.status == "failed"


def test_a_late_worker_cannot_overwrite_a_row_the_sweeper_gave_away(battle):
    gen = battle.generations.get(side="a")
    # The row was claimed twice (attempt 2 is live): attempt 1's worker writing late changes nothing.
    Generation.objects.filter(id=gen.id).update(status="running", attempts=2, output="from attempt 2")
    stale = _Progress(gen.id, 1, battle.code, 0, "a")
    _chunk(stale, "stale text")
    _chunk(stale, " and more")
    gen.refresh_from_db()
    assert gen.output == "from attempt 2"


def test_status_sync_leaves_voted_battles_alone(battle):
    Battle.objects.filter(id=battle.id).update(status="voted")
    battle_status_sync(battle_id=battle.id)
    assert Battle.objects.get(id=battle.id).status == "voted"


def test_outage_models_are_filtered_from_candidates(make_model):
    up = make_model()
    make_model(outage_since=timezone.now())
    make_model(weight=0)
    assert [c.id for c in model_candidates("text")] == [up.id]
    assert ModelEntry.objects.count() == 3
