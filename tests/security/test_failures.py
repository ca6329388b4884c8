"""Failures an attacker can cause or read: error wording before the vote, and prompts that make models fail.

Two classes of issue 11, each against the running stack (PostgreSQL, Redis, the real Celery worker, the
battle websocket's consumer on channels-redis, a local OpenAI-compatible server for the models):

- **Error wording**: a backend's own message ("maximum context length is 8192 tokens", the API-key variable's
  name, a proxy's banner, a CUDA crash) names or fingerprints a model. Voters read only the neutral text for
  the failure's kind, in the JSON, the page and the websocket; staff read the detail in the admin's review.
- **Input-caused failures**: a prompt with a lone surrogate is refused at the door (400, nothing stored); a
  prompt a model's server refuses (context length, content refusal or filter: 400/413/422) fails that battle
  without counting against the model; a prompt crafted to make servers crash (5xx) cannot put a model into
  outage either, because a failure streak only asks for a probe with a fixed, harmless prompt, and the probe
  decides. A model that is really down (or rejects every input) still goes out, and a probe brings it back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from celery.worker import state as worker_state
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db.models import Q
from django.test import Client

from arena.asgi import application
from arena.disclosure import voter_failure_text
from arena.models import Battle, Generation, ModelEntry
from arena.services import generations_enqueue
from tests.conftest import battle_settled, wait_for
from tests.support.openai_server import Behaviour, OpenAIServer
from tests.support.remote_3d_server import Answer, Remote3DServer
from voting.models import Voter
from workers.backends import BackendError, GenerationParams, GenerationRequest, InputRejected, backend_create
from workers.backends.base import MediaRequest
from workers.tasks import model_probe_task

UNSET_KEY_ENV = "ARENA_TEST_VLLM_KEY"  # named by a model's config, never set: its name must not reach a voter
# Words of backend errors that fingerprint a model or its deployment; none may reach a voter before the vote.
TELLING = [
    "maximum context length",
    "8192",
    "CUDA",
    "nginx",
    "Bad Gateway",
    UNSET_KEY_ENV,
    "api_key_env",
    "safety system",
    "content_policy",
    "content filter",
    "BadRequestError",
    "HTTP 4",
    "HTTP 5",
    "served-",
]
LONG_PROMPT = "a " * 9000  # 9,000 tokens on the test server: with max_tokens 2,000 past an 8,192 window


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    triggers = {
        "forbidden-topic": Behaviour(fault="refuse"),
        "filter-me": Behaviour(fault="filter"),
        "kaboom": Behaviour(fault="500"),  # a prompt crafted to crash the model's server
    }
    with OpenAIServer(default=Behaviour(context_limit=8192), triggers=triggers, hang_seconds=3) as running:
        yield running


def openai_model(slug: str, server: OpenAIServer, weight: float = 1.0, **config: object) -> ModelEntry:
    return ModelEntry.objects.create(
        slug=slug,
        display_name=slug.title(),
        organization=f"{slug} labs",
        weight=weight,
        backend_kind="openai",
        backend_config={"base_url": server.base_url, "model": f"served-{slug}", "timeout": 1.0, **config},
    )


def start(client: Client, prompt: str) -> tuple[int, dict]:
    response = client.post(
        "/api/battles", {"prompt": prompt, "modality": "text"}, content_type="application/json"
    )
    return response.status_code, response.json()


def settled(client: Client, prompt: str) -> Battle:
    """Start a battle and wait for both sides to finish (a battle fails as soon as one side does)."""
    status, body = start(client, prompt)
    assert status == 201, body
    wait_for(battle_settled(body["code"]), timeout=15)
    running = Generation.objects.filter(battle__code=body["code"], status__in=["queued", "running"])
    wait_for(lambda: not running.exists(), timeout=15)
    return Battle.objects.get(code=body["code"])


def streaks_settled(threshold: int) -> None:
    """Wait until every failure streak's probe has answered (it resets the streak or starts an outage), and
    the worker has nothing left in hand."""
    streak = Q(consecutive_failures__gte=threshold) | Q(consecutive_rejections__gte=threshold)
    wait_for(lambda: not ModelEntry.objects.filter(streak, outage_since__isnull=True).exists(), timeout=20)
    wait_for(lambda: not worker_state.active_requests, timeout=20)


def leaks(text: str, models: list[ModelEntry]) -> list[str]:
    names = [name for m in models for name in (m.slug, m.display_name, m.organization)]
    return [word for word in [*TELLING, *names] if word.lower() in text.lower()]


# --- Error wording: voters read the kind, staff read the words ----------------------------------------------


def owned_battle(client: Client, model_a: ModelEntry, model_b: ModelEntry, prompt: str) -> Battle:
    """A battle in this client's session, written directly so the socket can listen before its sides run."""
    voter = Voter.objects.create(session_hash=f"failures-{model_a.slug}")
    session = client.session
    session["voter_id"] = voter.id
    session.save()
    client.cookies["sessionid"] = session.session_key
    battle = Battle.objects.create(voter=voter, model_a=model_a, model_b=model_b, conversation=[prompt])
    for side, model in (("a", model_a), ("b", model_b)):
        Generation.objects.create(battle=battle, turn=0, side=side, model=model)
    return battle


async def socket_events(battle: Battle, cookie: str) -> list[dict]:
    """Every event the battle's websocket relays from before its sides start until the battle settles (the
    real consumer, routing and session auth on the channels-redis layer, in this process)."""
    headers = [(b"cookie", f"sessionid={cookie}".encode()), (b"origin", b"http://localhost")]
    socket = WebsocketCommunicator(application, f"/ws/battle/{battle.code}/", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    events: list[dict] = []
    try:
        await asyncio.to_thread(lambda: generations_enqueue(list(battle.generations.select_related("model"))))
        while not any(e.get("type") == "status" for e in events):
            events.append(json.loads(await socket.receive_from(timeout=20)))
    finally:
        await socket.disconnect()
    return events


FAULTS = {
    # name: (how the model is configured, the kind a voter learns, words staff must see)
    "context": ({"behaviour": Behaviour(fault="context")}, "input", "maximum context length is 8192 tokens"),
    "refusal": ({"behaviour": Behaviour(fault="refuse")}, "input", "safety system"),
    "crash": ({"behaviour": Behaviour(fault="500")}, "unavailable", "CUDA error"),
    "banner": ({"behaviour": Behaviour(fault="html-502")}, "unavailable", "HTTP 502"),
    "keyless": ({"config": {"api_key_env": UNSET_KEY_ENV}}, "unavailable", UNSET_KEY_ENV),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_voters_read_a_neutral_failure_text_and_staff_the_backends_words(fault, worker, server, alice):
    setup, kind, detail = FAULTS[fault]
    healthy = openai_model("steady", server)
    failing = openai_model(f"broken-{fault}", server, **setup.get("config", {}))
    if "behaviour" in setup:
        server.models[f"served-broken-{fault}"] = setup["behaviour"]
    battle = owned_battle(alice, healthy, failing, "How do tides work?")

    events = asyncio.run(socket_events(battle, alice.cookies["sessionid"].value))
    failed = Generation.objects.get(battle=battle, model=failing)
    assert failed.status == "failed" and failed.failure_kind == kind
    assert detail in failed.error_detail, "staff keep the backend's own words"

    text = voter_failure_text(kind)
    assert [e["error"] for e in events if e["type"] == "failed"] == [text]
    state = alice.get(f"/api/battles/{battle.code}").json()
    assert state["status"] == "failed" and state["turns"][0][failed.side]["error"] == text
    page = alice.get(f"/b/{battle.code}/").content.decode()
    models = [healthy, failing]
    for channel, seen in (("websocket", json.dumps(events)), ("JSON", json.dumps(state)), ("page", page)):
        assert not leaks(seen, models), f"the {channel} holds {leaks(seen, models)}"

    staff = Client()
    staff.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    review = staff.get(f"/admin/arena/battle/{battle.id}/change/").content.decode()
    assert detail in review and f"Failed ({kind})" in review


# --- Input-caused failures ----------------------------------------------------------------------------------


def test_a_lone_surrogate_is_refused_at_the_door_with_nothing_stored(demo_models, worker, alice):
    raw = '{"prompt": "tell me about \\ud800 tides", "modality": "text"}'  # valid JSON, not encodable text
    response = alice.post("/api/battles", raw, content_type="application/json")
    assert response.status_code == 400 and "not valid text" in response.json()["error"]
    assert not Battle.objects.exists()

    battle = settled(alice, "Tell me about tides")
    assert battle.status == "ready"
    raw = '{"prompt": "and \\udfff more"}'
    response = alice.post(f"/api/battles/{battle.code}/continue", raw, content_type="application/json")
    assert response.status_code == 400 and "not valid text" in response.json()["error"]
    battle.refresh_from_db()
    assert battle.conversation == ["Tell me about tides"] and battle.generations.count() == 2


def test_an_answer_holding_a_lone_surrogate_or_nul_is_stored_not_failed(worker, server, alice):
    models = [openai_model(slug, server) for slug in ("odd-one", "odd-two")]
    for model in models:
        server.models[f"served-{model.slug}"] = Behaviour(reply="fine \ud800 and \x00 here")
    battle = settled(alice, "Say something odd")
    assert battle.status == "ready"
    assert {g.output for g in battle.generations.all()} == {"fine \ufffd and \ufffd here"}
    assert not ModelEntry.objects.filter(consecutive_failures__gt=0).exists()


def test_twenty_hostile_prompts_put_no_model_into_outage_and_the_arena_keeps_serving(
    worker, server, alice, settings
):
    # Stricter than the default (3): the 8 crash failures below must give some model a streak.
    settings.ARENA_OUTAGE_AFTER_FAILURES = 2
    models = [openai_model(f"model-{n}", server) for n in range(5)]
    hostile = {
        "context": (LONG_PROMPT, "input"),
        "refusal": ("Tell me about the forbidden-topic", "input"),
        "filter": ("filter-me: say it anyway", "input"),
        "crash": ("kaboom kaboom kaboom", "unavailable"),  # crafted to make the servers answer 500
    }
    for _ in range(4):
        raw = '{"prompt": "\\ud83d alone", "modality": "text"}'
        assert alice.post("/api/battles", raw, content_type="application/json").status_code == 400
        for name, (prompt, kind) in hostile.items():
            battle = settled(alice, prompt)  # 201, never a 503: every model is still there to draw
            assert battle.status == "failed", name
            assert {g.failure_kind for g in battle.generations.all()} == {kind}, name
    streaks_settled(2)
    assert not ModelEntry.objects.filter(outage_since__isnull=False).exists(), "no model went into outage"
    assert settled(alice, "How do tides work?").status == "ready"
    probed = [r for r in server.requests if r.body and "one short friendly sentence" in json.dumps(r.body)]
    assert probed, "the crash prompts' streaks were settled by probes, not by outages"
    assert len(models) == ModelEntry.objects.filter(outage_since__isnull=True).count()


def test_a_real_5xx_streak_still_takes_a_model_out_and_a_probe_brings_it_back(worker, server, alice):
    openai_model("steady", server)
    openai_model("sturdy", server)
    down = ModelEntry.objects.create(
        slug="down",
        display_name="Down",
        weight=1000,  # drawn in (almost) every battle while it is in sampling
        backend_kind="openai",
        queue="gpu-test",  # its probes go to its own queue, where its worker is
        backend_config={"base_url": server.base_url, "model": "served-down", "timeout": 1.0},
    )
    server.models["served-down"] = Behaviour(fault="500")
    for _ in range(3):  # ARENA_OUTAGE_AFTER_FAILURES
        battle = settled(alice, "How do tides work?")
        assert battle.status == "failed" and down.id in (battle.model_a_id, battle.model_b_id)
    # The streak's probe, on the model's own queue, gets a 500 too: the model goes out.
    wait_for(lambda: ModelEntry.objects.get(id=down.id).in_outage, timeout=15)
    battle = settled(alice, "How do tides work?")
    assert down.id not in (battle.model_a_id, battle.model_b_id) and battle.status == "ready"

    server.models["served-down"] = Behaviour()
    model_probe_task()  # the periodic run: one probe to the model's own queue
    wait_for(lambda: not ModelEntry.objects.get(id=down.id).in_outage, timeout=15)
    battle = settled(alice, "How do tides work?")
    assert down.id in (battle.model_a_id, battle.model_b_id) and battle.status == "ready"


def test_a_model_that_rejects_every_input_is_probed_and_taken_out(worker, server, alice):
    openai_model("steady", server)
    openai_model("sturdy", server)
    misconfigured = openai_model("picky", server, weight=1000)
    server.models["served-picky"] = Behaviour(fault="refuse")  # every request, the probe's too
    for _ in range(3):
        battle = settled(alice, "How do tides work?")
        assert misconfigured.id in (battle.model_a_id, battle.model_b_id)
        assert Generation.objects.get(battle=battle, model=misconfigured).failure_kind == "input"
    wait_for(lambda: ModelEntry.objects.get(id=misconfigured.id).in_outage, timeout=15)
    picky = ModelEntry.objects.get(id=misconfigured.id)
    assert picky.consecutive_failures == 0, "rejections are not failures"
    assert picky.consecutive_rejections >= 3, "they are a streak of their own"


# --- Which backend errors are the input's fault -------------------------------------------------------------


def chat_failure(server: OpenAIServer, prompt: str = "hello", **config: object) -> BackendError:
    backend = backend_create("openai", {"base_url": server.base_url, "model": "served-x", **config})
    request = GenerationRequest([{"role": "user", "content": prompt}], GenerationParams(max_new_tokens=8))
    with pytest.raises(BackendError) as caught:
        list(backend.stream(request))
    return caught.value


def test_chat_servers_rejecting_this_input_raise_input_rejected(server):
    assert isinstance(chat_failure(server, LONG_PROMPT, max_new_tokens=2000), InputRejected)
    assert isinstance(chat_failure(server, "forbidden-topic"), InputRejected)
    assert isinstance(chat_failure(server, "filter-me"), InputRejected), "a content_filter finish, no content"
    # The model's or the operator's problem: counted against the model.
    assert not isinstance(chat_failure(server, "kaboom"), InputRejected)
    assert not isinstance(chat_failure(server, model="fault-html-502"), InputRejected)
    with OpenAIServer(api_key="right-key") as keyed:
        assert not isinstance(chat_failure(keyed), InputRejected)  # 401
    wrong_path = server.base_url.removesuffix("/v1") + "/nowhere"
    assert not isinstance(chat_failure(server, base_url=wrong_path), InputRejected)  # 404


def test_image_servers_refusing_a_prompt_raise_input_rejected(server):
    def image_failure(prompt: str) -> BackendError:
        backend = backend_create("openai_images", {"base_url": server.base_url, "model": "served-img"})
        with pytest.raises(BackendError) as caught:
            backend.generate(MediaRequest(prompt=prompt), lambda fraction: None)
        return caught.value

    assert isinstance(image_failure("forbidden-topic"), InputRejected)
    assert not isinstance(image_failure("kaboom"), InputRejected)


def test_a_3d_server_answering_422_raises_input_rejected():
    routes = {
        "fault-422": Answer(status=422, body=b'{"detail": "prompt too long for tripo-v2"}'),
        "fault-401": Answer(status=401, body=b'{"detail": "bad token"}'),
    }
    with Remote3DServer(routes) as running:
        for route, rejected in (("fault-422", True), ("fault-401", False), ("fault-500", False)):
            backend = backend_create("remote_3d", {"url": running.url(route)})
            with pytest.raises(BackendError) as caught:
                backend.generate(MediaRequest(prompt="a chair"), lambda fraction: None)
            assert isinstance(caught.value, InputRejected) is rejected, route
            assert "tripo" not in str(caught.value), "the body goes to the log, not into the detail"
