"""A battle through the HTTP API with a real Celery worker on Redis, and every refusal on the way."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from arena.models import Battle, Generation
from tests.conftest import battle_settled, wait_for
from tests.support.challenge import vote_post
from voting.models import Vote


def start(client: Client, prompt: object = "Why is the sky blue?", **extra: object) -> tuple[int, dict]:
    response = client.post(
        "/api/battles", {"prompt": prompt, "modality": "text", **extra}, content_type="application/json"
    )
    return response.status_code, response.json()


def vote(client: Client, code: str, choice: str = "a") -> tuple[int, dict]:
    """Vote as the page does, with a freshly solved proof-of-work challenge."""
    response = vote_post(client, code, choice)
    return response.status_code, response.json()


@pytest.mark.django_db(transaction=True)
def test_a_battle_streams_both_sides_then_a_vote_reveals_the_models(demo_models, worker, alice):
    status, data = start(alice)
    assert status == 201
    assert set(data["state"]["turns"][0]) == {"prompt", "a", "b"}
    body = json.dumps(data)
    assert not any(m.slug in body or m.display_name in body for m in demo_models), (
        "identity leaked before vote"
    )

    wait_for(battle_settled(data["code"]))
    state = alice.get(f"/api/battles/{data['code']}").json()
    assert state["status"] == "ready" and state["can_vote"]
    assert all(state["turns"][0][side]["output"] for side in "ab")
    assert state["vote"] is None

    status, voted = vote(alice, data["code"], "b")
    assert status == 200
    battle = Battle.objects.get(code=data["code"])
    assert voted["state"]["vote"]["reveal"]["a"]["slug"] == battle.model_a.slug
    assert voted["state"]["vote"]["reveal"]["b"]["slug"] == battle.model_b.slug
    vote_row = Vote.objects.get(battle=battle)
    assert vote_row.choice == "b" and vote_row.counted and vote_row.seconds_to_vote >= 0


@pytest.mark.django_db(transaction=True)
def test_a_slow_model_never_delays_the_other_side(make_model, worker, alice):
    make_model(backend_config={"persona": "concise", "delay": 0.001})
    make_model(backend_config={"persona": "thorough", "delay": 0.001, "first_token_delay": 1.5})
    status, data = start(alice)
    assert status == 201
    wait_for(battle_settled(data["code"]))
    fast, slow = sorted(
        Generation.objects.filter(battle__code=data["code"]),
        key=lambda g: g.model.backend_config.get("first_token_delay", 0),
    )
    # The fast model's own work never waits (first_chunk_at is the model's first token); what the page shows
    # of it waits for the slow side's first chunk on purpose (workers/pacing.py).
    assert fast.first_chunk_at < slow.first_chunk_at, "the fast side waited for the slow one"
    assert (slow.first_chunk_at - slow.started_at).total_seconds() >= 1.4


@pytest.mark.django_db(transaction=True)
def test_a_conversation_continues_for_several_turns_and_the_vote_covers_it(demo_models, worker, alice):
    _, data = start(alice, "Tell me about rivers.")
    code = data["code"]
    wait_for(battle_settled(code))
    response = alice.post(
        f"/api/battles/{code}/continue", {"prompt": "And about lakes?"}, content_type="application/json"
    )
    assert response.status_code == 200
    wait_for(battle_settled(code))
    state = alice.get(f"/api/battles/{code}").json()
    assert [t["prompt"] for t in state["turns"]] == ["Tell me about rivers.", "And about lakes?"]
    second_a = Generation.objects.get(battle__code=code, turn=1, side="a")
    assert second_a.status == "done"
    assert vote(alice, code)[0] == 200
    refused = alice.post(
        f"/api/battles/{code}/continue", {"prompt": "More?"}, content_type="application/json"
    )
    assert refused.status_code == 409


@pytest.mark.django_db(transaction=True)
def test_a_failed_side_shows_its_error_and_the_battle_cannot_be_voted(make_model, worker, alice):
    make_model(
        slug="broken-bot", display_name="Broken Bot", backend_config={"persona": "concise", "fail_rate": 1}
    )
    make_model(
        slug="fine-bot", display_name="Fine Bot", backend_config={"persona": "concise", "delay": 0.001}
    )
    _, data = start(alice)
    wait_for(battle_settled(data["code"]))
    state = alice.get(f"/api/battles/{data['code']}").json()
    assert state["status"] == "failed" and not state["can_vote"]
    errors = [state["turns"][0][s]["error"] for s in "ab" if state["turns"][0][s]["status"] == "failed"]
    assert errors == ["One of the models could not answer right now. Please start a new battle."]
    status, body = vote(alice, data["code"])
    assert status == 409 and "failed" in body["error"]
    assert not Vote.objects.exists()


@pytest.mark.django_db
def test_the_battle_page_shows_the_stored_state_after_a_reload(demo_models, alice):
    _, data = start(alice)
    battle = Battle.objects.get(code=data["code"])
    Generation.objects.filter(battle=battle).update(status="done", output="Stored answer text")
    Battle.objects.filter(id=battle.id).update(status="ready")
    html = alice.get(f"/b/{battle.code}/").content.decode()
    assert "Stored answer text" in html
    assert battle.model_a.slug not in html and battle.model_b.display_name not in html


@pytest.mark.django_db
def test_battle_page_queries_stay_bounded(demo_models, alice, django_assert_max_num_queries):
    _, data = start(alice, "Hello there")
    with django_assert_max_num_queries(8):
        assert alice.get(f"/b/{data['code']}/").status_code == 200
    with django_assert_max_num_queries(8):
        assert alice.get(f"/api/battles/{data['code']}").status_code == 200


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_oversized_prompt_is_refused_with_the_limit_and_nothing_is_stored(demo_models, alice, settings):
    settings.ARENA_MAX_PROMPT_CHARS = 100
    status, body = start(alice, "x" * 101)
    assert status == 400
    assert "101" in body["error"] and "100" in body["error"]
    assert not Battle.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prompt", "message"),
    [("   ", "Type a prompt"), ("a\x00b", "NUL"), (42, "must be text"), (None, "must be text")],
)
def test_bad_prompts_get_a_clear_error(demo_models, alice, prompt, message):
    status, body = start(alice, prompt)
    assert status == 400 and message in body["error"]
    assert not Battle.objects.exists()


@pytest.mark.django_db
def test_malformed_json_and_unknown_modality_are_refused(demo_models, alice):
    response = alice.post("/api/battles", "{not json", content_type="application/json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = alice.post("/api/battles", "[1, 2]", content_type="application/json")
    assert response.status_code == 400 and "JSON object" in response.json()["error"]
    status, body = start(alice, modality="video")
    assert status == 400 and "Unknown modality" in body["error"]


@pytest.mark.django_db
def test_no_battle_starts_when_fewer_than_two_models_can_run(make_model, alice):
    make_model()
    make_model(active=False)
    status, body = start(alice)
    assert status == 503 and "Not enough models" in body["error"]


@pytest.mark.django_db
def test_another_voter_can_neither_see_continue_nor_vote_on_a_battle(demo_models, alice, bob):
    _, data = start(alice)
    code = data["code"]
    Battle.objects.filter(code=code).update(status="ready")
    assert bob.get(f"/api/battles/{code}").status_code == 403
    assert bob.get(f"/b/{code}/").status_code == 403
    assert (
        bob.post(
            f"/api/battles/{code}/continue", {"prompt": "hi"}, content_type="application/json"
        ).status_code
        == 403
    )
    status, body = vote(bob, code)
    assert status == 403 and "Only the person" in body["error"]
    assert not Vote.objects.exists()


@pytest.mark.django_db
def test_a_forged_battle_code_is_not_found(alice):
    assert alice.get("/api/battles/forged-code").status_code in (403, 404)
    status, body = vote(alice, "forged-code")
    assert status == 404 and "No battle" in body["error"]


@pytest.mark.django_db
def test_voting_while_a_side_is_running_is_refused(demo_models, alice):
    _, data = start(alice)
    status, body = vote(alice, data["code"])
    assert status == 409 and "Wait until both answers" in body["error"]


@pytest.mark.django_db
def test_a_second_vote_and_an_unknown_choice_are_refused(demo_models, alice):
    _, data = start(alice)
    Battle.objects.filter(code=data["code"]).update(status="ready")
    status, body = vote(alice, data["code"], "left")
    assert status == 400 and "Unknown choice" in body["error"]
    assert vote(alice, data["code"], "tie")[0] == 200
    status, body = vote(alice, data["code"], "a")
    assert status == 409 and "already voted" in body["error"]
    assert Vote.objects.get().choice == "tie"


@pytest.mark.django_db
def test_get_on_a_post_endpoint_is_refused(alice):
    assert alice.get("/api/battles").status_code == 405


@pytest.mark.django_db
def test_a_random_prompt_comes_from_the_demo_set(demo_models, alice):
    response = alice.get("/api/prompts/random?modality=text")
    assert response.status_code == 200 and response.json()["prompt"]
    assert alice.get("/api/prompts/random?modality=nope").status_code == 400


def test_models_in_outage_are_not_sampled(db, make_model, alice):
    make_model()
    down = make_model()
    down.outage_since = timezone.now()
    down.save(update_fields=["outage_since"])
    assert start(alice)[0] == 503, "a model in outage was sampled"
    down.outage_since = None
    down.save(update_fields=["outage_since"])
    assert start(alice)[0] == 201
