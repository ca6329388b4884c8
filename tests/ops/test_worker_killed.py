"""A Celery worker SIGKILLed in the middle of a generation, as an OOM kill or a lost machine would end it.

The generation row stays `running` with half an answer; nothing can vote on it. The sweeper (the periodic
task workers.services.generation_sweep) then requeues it and a second worker finishes it from the start, or,
when it is out of attempts, fails it with a message the voter can act on. Either way the battle is never
stuck. tests/workers/test_generation_run.py covers the sweeper's rules on rows set up by hand; here the
worker is a real process that really dies.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from arena.models import Battle, Generation, ModelEntry
from tests.conftest import battle_settled, wait_for
from tests.ops.procs import Process, service_env, wait_until, worker_start
from tests.support.challenge import vote_post
from tests.support.openai_server import Behaviour, OpenAIServer
from voting.models import Vote
from workers.services import generation_sweep

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = " ".join(f"word{i}" for i in range(40))  # the test server echoes it back word by word


@pytest.fixture
def queue() -> str:
    """A queue of this test's own: only the workers it starts consume it, not the session's worker."""
    return f"fault-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(models={"slow": Behaviour(chunk_delay=0.15)}) as server:
        yield server


@pytest.fixture
def workers() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.stop(graceful=False)


@pytest.fixture
def battle(alice, server: OpenAIServer, queue: str, workers: list[Process]) -> str:
    """A battle whose slow side is mid-stream on a worker that is then killed. Returns its code."""
    for slug, served in (("steady", "quick"), ("sluggish", "slow")):
        ModelEntry.objects.create(
            slug=slug,
            display_name=slug.title(),
            backend_kind="openai",
            queue=queue,
            backend_config={"base_url": server.base_url, "model": served, "timeout": 5.0},
        )
    env = service_env(ARENA_STREAM_FLUSH_SECONDS="0.05")
    workers.append(worker_start([queue], env))
    body = {"prompt": PROMPT, "modality": "text"}
    response = alice.post("/api/battles", body, content_type="application/json")
    assert response.status_code == 201, response.content
    code = response.json()["code"]
    slow = Generation.objects.filter(battle__code=code, model__slug="sluggish")
    steady = Generation.objects.filter(battle__code=code, model__slug="steady")
    wait_until(
        lambda: len(slow.get().output.split()) >= 3 and steady.get().status == "done",
        20,
        "the slow side streaming and the quick side done",
        workers[0],
    )
    workers[0].kill()
    return code


def half_answer_state(alice, code: str) -> Generation:
    """What a killed worker leaves: a running row with part of the answer, and a battle no one can vote on."""
    gen = Generation.objects.get(battle__code=code, model__slug="sluggish")
    assert gen.status == "running" and gen.attempts == 1
    assert 0 < len(gen.output.split()) < 40
    response = vote_post(alice, code, "a")
    assert response.status_code == 409, response.content
    assert "Wait until both answers are finished" in response.json()["error"]
    assert not Vote.objects.filter(battle__code=code).exists()
    return gen


def make_stale(settings, gen: Generation) -> None:
    """The sweeper treats a row as lost once it has run longer than ARENA_GENERATION_STUCK_AFTER."""
    settings.ARENA_GENERATION_STUCK_AFTER = 1
    wait_for(lambda: time.time() - gen.started_at.timestamp() > 1.2, timeout=5)


def test_a_killed_workers_generation_is_requeued_and_finished_by_another_worker(
    alice, battle, server, queue, workers, settings
):
    gen = half_answer_state(alice, battle)
    make_stale(settings, gen)
    server.models["slow"] = Behaviour()  # the second attempt need not be slow
    assert generation_sweep() >= 1
    gen.refresh_from_db()
    assert gen.status == "queued" and gen.attempts == 1

    workers.append(worker_start([queue], service_env()))
    wait_for(battle_settled(battle), timeout=20)
    gen.refresh_from_db()
    assert gen.status == "done" and gen.attempts == 2
    assert gen.output.split() == PROMPT.split(), "the answer is the whole second attempt, not pieces of two"
    assert Battle.objects.get(code=battle).status == "ready"
    response = vote_post(alice, battle, "b")
    assert response.status_code == 200, response.content
    assert Vote.objects.filter(battle__code=battle, choice="b").count() == 1


def test_a_killed_workers_generation_fails_clearly_when_out_of_attempts(alice, battle, settings):
    gen = half_answer_state(alice, battle)
    make_stale(settings, gen)
    settings.ARENA_GENERATION_MAX_ATTEMPTS = 1
    assert generation_sweep() >= 1
    gen.refresh_from_db()
    assert gen.status == "failed" and "worker generating this answer stopped" in gen.error_detail
    state = alice.get(f"/api/battles/{battle}").json()
    assert state["status"] == "failed" and not state["can_vote"]
    sides = state["turns"][0]
    assert "Please start a new battle" in next(s["error"] for s in (sides["a"], sides["b"]) if s["error"])
    response = vote_post(alice, battle, "a")
    assert response.status_code == 409 and "One side failed" in response.json()["error"]
    assert generation_sweep() == 0, "a failed row is left alone by later sweeps"
