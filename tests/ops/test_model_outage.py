"""A model server that keeps failing, in any of the ways real ones do, goes into outage and out of sampling,
and comes back only when a probe gets an answer from it.

tests/workers/test_battles_on_real_backends.py checks each fault fails its side cleanly and that repeated 500s
start an outage; this follows the whole cycle through the Celery worker: mixed faults (500, hang, cut stream)
count towards the outage, whose probe (on the model's own queue) fails too and takes the model out; battles
started during it never draw the model, the periodic probe leaves it out while the server still fails and
brings it back once the server answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from arena.models import Battle, Generation, ModelEntry
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from tests.support.openai_server import Behaviour, OpenAIServer
from voting.models import Vote
from workers.tasks import model_probe_task

pytestmark = pytest.mark.django_db(transaction=True)

FAULTS = [("500", "500"), ("hang", "did not answer"), ("cut", "ended early")]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(hang_seconds=3) as server:
        yield server


def model(slug: str, server: OpenAIServer, weight: float = 1.0) -> ModelEntry:
    return ModelEntry.objects.create(
        slug=slug,
        display_name=slug.title(),
        organization=f"{slug} labs",
        weight=weight,
        backend_kind="openai",
        backend_config={"base_url": server.base_url, "model": f"served-{slug}", "timeout": 0.5},
    )


def battle_start(client) -> Battle:
    response = client.post(
        "/api/battles", {"prompt": "How do tides work?", "modality": "text"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    code = response.json()["code"]
    wait_for(battle_settled(code), timeout=15)
    return Battle.objects.get(code=code)


def test_a_failing_model_goes_into_outage_out_of_sampling_and_back_after_a_good_probe(
    worker, alice, server, settings
):
    settings.ARENA_OUTAGE_AFTER_FAILURES = len(FAULTS)
    model("steady", server)
    model("sturdy", server)
    # Heavier than the rest together, so that while it is healthy it is in (almost) every battle.
    flaky = model("flaky", server, weight=1000)

    for fault, message in FAULTS:
        server.models["served-flaky"] = Behaviour(fault=fault)
        battle = battle_start(alice)
        assert flaky.id in (battle.model_a_id, battle.model_b_id)
        failed = Generation.objects.get(battle=battle, model=flaky)
        assert failed.status == "failed" and message in failed.error_detail, (fault, failed.error_detail)
        assert battle.status == "failed"
        state = alice.get(f"/api/battles/{battle.code}").json()
        assert "flaky" not in json.dumps(state).lower(), "error texts never name the model before a vote"
        assert vote_post(alice, battle.code, "a").status_code == 409
    wait_for(lambda: ModelEntry.objects.get(id=flaky.id).in_outage, timeout=15)
    flaky.refresh_from_db()
    assert flaky.consecutive_failures == len(FAULTS)

    for _ in range(5):
        battle = battle_start(alice)
        assert flaky.id not in (battle.model_a_id, battle.model_b_id), "a model in outage is never drawn"
        assert battle.status == "ready"

    # The periodic probe (run inline here: it sends one probe to the model's queue) while the server still
    # fails: the model stays out.
    probes = len(server.requests)
    model_probe_task()
    wait_for(lambda: len(server.requests) == probes + 1)
    flaky.refresh_from_db()
    assert flaky.in_outage

    # The server recovers; the next probe, through the worker, brings the model back.
    server.models["served-flaky"] = Behaviour()
    model_probe_task.delay()
    wait_for(lambda: not ModelEntry.objects.get(id=flaky.id).in_outage, timeout=15)
    flaky.refresh_from_db()
    assert flaky.consecutive_failures == 0
    battle = battle_start(alice)
    assert flaky.id in (battle.model_a_id, battle.model_b_id) and battle.status == "ready"
    assert vote_post(alice, battle.code, "a").status_code == 200
    assert Vote.objects.filter(battle=battle).count() == 1, "the acknowledged vote is stored"
