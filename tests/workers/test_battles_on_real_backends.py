"""Whole battles through the Celery worker on real backends: a local OpenAI-compatible server with
fault injection, and a tiny transformers model built and saved by the test."""

from __future__ import annotations

import json

import pytest

from arena.disclosure import voter_failure_text
from arena.models import Battle, Generation, ModelEntry
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from tests.support.openai_server import Behaviour, OpenAIServer
from tests.support.tiny_models import tiny_model_save

pytestmark = pytest.mark.django_db(transaction=True)


def start(client, prompt="Tell me about tides please"):
    response = client.post(
        "/api/battles", {"prompt": prompt, "modality": "text"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return response.json()["code"]


def openai_model(slug: str, server: OpenAIServer, served_name: str, **config: object) -> ModelEntry:
    return ModelEntry.objects.create(
        slug=slug,
        display_name=slug.title(),
        organization=f"{slug} labs",
        backend_kind="openai",
        backend_config={"base_url": server.base_url, "model": served_name, "timeout": 1.0, **config},
    )


def test_two_openai_compatible_models_stream_a_battle_to_the_end(worker, alice):
    with OpenAIServer(default=Behaviour(chunk_delay=0.005)) as server:
        openai_model("alpha", server, "served-alpha", temperature=0.2)
        openai_model("beta", server, "served-beta")
        code = start(alice)
        wait_for(battle_settled(code))
    state = alice.get(f"/api/battles/{code}").json()
    assert state["status"] == "ready"
    for side in "ab":
        assert state["turns"][0][side]["output"].split() == ["Tell", "me", "about", "tides", "please"]
    sent = {r.body["model"]: r.body for r in server.requests if r.path.endswith("/chat/completions")}
    assert sent["served-alpha"]["temperature"] == 0.2 and sent["served-alpha"]["stream"] is True
    gens = Generation.objects.filter(battle__code=code)
    assert all(g.output_tokens == 5 and g.prompt_tokens for g in gens)


def test_a_model_server_error_fails_its_side_without_naming_the_model(worker, alice, settings):
    settings.ARENA_OUTAGE_AFTER_FAILURES = 2
    with OpenAIServer() as server:
        openai_model("healthy", server, "served-healthy")
        broken = openai_model("broken", server, "fault-500")
        for _ in range(2):
            code = start(alice)
            wait_for(battle_settled(code))
            state = alice.get(f"/api/battles/{code}").json()
            assert state["status"] == "failed"
            failed = [state["turns"][0][s] for s in "ab" if state["turns"][0][s]["status"] == "failed"]
            assert failed[0]["error"] == voter_failure_text("unavailable"), "the neutral text, not HTTP 500"
            assert "500" in Generation.objects.get(battle__code=code, model=broken).error_detail
            assert "broken" not in json.dumps(state).lower() and "fault-500" not in json.dumps(state)
        # The streak asks the model's worker for a probe; the server fails that too, so the model goes out.
        wait_for(lambda: ModelEntry.objects.get(id=broken.id).in_outage, timeout=15)


def test_a_hanging_model_server_times_out_cleanly(worker, alice):
    with OpenAIServer(hang_seconds=5) as server:
        openai_model("steady", server, "served-steady")
        openai_model("stuck", server, "fault-hang", timeout=0.5)
        code = start(alice)
        wait_for(battle_settled(code), timeout=15)
    generation = Generation.objects.get(battle__code=code, model__slug="stuck")
    assert generation.status == "failed" and "did not answer" in generation.error_detail
    assert Battle.objects.get(code=code).status == "failed"


def test_a_stream_cut_mid_answer_fails_and_keeps_the_partial_text_out_of_any_vote(worker, alice):
    with OpenAIServer() as server:
        openai_model("whole", server, "served-whole")
        openai_model("cut", server, "fault-cut")
        code = start(alice, "one two three four five six seven eight")
        wait_for(battle_settled(code))
    cut = Generation.objects.get(battle__code=code, model__slug="cut")
    assert cut.status == "failed" and "ended early" in cut.error_detail
    response = vote_post(alice, code, "a")
    assert response.status_code == 409


def test_a_tiny_transformers_model_answers_a_battle_through_the_worker(worker, alice, tmp_path):
    path = tiny_model_save(tmp_path / "tiny")
    for slug in ("tiny-one", "tiny-two"):
        ModelEntry.objects.create(
            slug=slug,
            display_name=slug,
            backend_kind="transformers",
            queue="gpu-test",
            backend_config={"model_path": str(path), "device": "auto", "max_new_tokens": 6, "seed": 3},
        )
    code = start(alice)
    wait_for(battle_settled(code), timeout=60)
    gens = list(Generation.objects.filter(battle__code=code))
    assert all(g.status == "done" and g.output and g.output_tokens == 6 for g in gens), [
        g.error_detail for g in gens
    ]
    assert gens[0].output == gens[1].output, "same weights and seed give the same answer on both sides"
