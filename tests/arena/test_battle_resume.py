"""A page that joins or rejoins a battle's socket mid-stream resumes from its last offset: one
{"type": "sync"} answers the whole state, with each generating side's text as far as it was published
(the database lags)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from arena.asgi import application
from arena.models import Battle, Generation
from voting.models import Voter
from workers.events import battle_publish, stream_text

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(demo_models, alice) -> tuple[str, Client]:
    voter = Voter.objects.create(session_hash="alice-resume")
    session = alice.session
    session["voter_id"] = voter.id
    session.save()
    alice.cookies["sessionid"] = session.session_key
    a, b = demo_models[:2]
    battle = Battle.objects.create(voter=voter, model_a=a, model_b=b, conversation=["Name three rivers."])
    for side, model in (("a", a), ("b", b)):
        Generation.objects.create(
            battle=battle, turn=0, side=side, model=model, status="running", attempts=1, output="The Ni"
        )
    return battle.code, alice


def _socket(code: str, client: Client) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"origin", b"http://localhost")]
    return WebsocketCommunicator(application, f"/ws/battle/{code}/", headers=headers)


def _chunk(code: str, side: str, offset: int, text: str, attempt: int = 1) -> None:
    event = {"type": "chunk", "turn": 0, "side": side, "attempt": attempt, "offset": offset, "text": text}
    battle_publish(code, event)


async def _state(socket: WebsocketCommunicator) -> dict:
    await socket.send_to(text_data=json.dumps({"type": "sync"}))
    while True:
        message = json.loads(await socket.receive_from(timeout=5))
        if message["type"] == "state":
            return message["state"]


async def test_a_late_socket_gets_the_published_text_not_the_lagging_database(running):
    code, alice = running
    # Published before the page's socket joined (a reload mid-stream, a dropped socket): missed by the page.
    await sync_to_async(_chunk)(code, "a", 0, "The Nile, ")
    await sync_to_async(_chunk)(code, "a", 10, "the Amazon")
    await sync_to_async(_chunk)(code, "b", 0, "Danube")  # does not extend the database's "The Ni": ignored
    socket = _socket(code, alice)
    assert (await socket.connect())[0]
    state = await _state(socket)
    await socket.disconnect()
    assert state["code"] == code and state["status"] == "generating"
    side_a = state["turns"][0]["a"]
    assert (side_a["status"], side_a["output"]) == ("running", "The Nile, the Amazon")
    assert state["turns"][0]["b"]["output"] == "The Ni"
    blob = json.dumps(state)
    names = await sync_to_async(lambda: [(b.model_a.slug, b.model_b.display_name) for b in
                                         Battle.objects.select_related("model_a", "model_b")])()
    assert not [n for pair in names for n in pair if n in blob], "no identity before the vote"


async def test_a_new_attempt_restarts_the_record_and_a_gap_keeps_the_known_prefix(running):
    code, _ = running
    await sync_to_async(_chunk)(code, "a", 0, "first try")
    await sync_to_async(_chunk)(code, "a", 0, "Sec", attempt=2)
    await sync_to_async(_chunk)(code, "a", 3, "ond", attempt=2)
    await sync_to_async(_chunk)(code, "a", 50, "past a gap", attempt=2)
    await sync_to_async(_chunk)(code, "a", 3, "OND!", attempt=2)  # a repeat from an offset rewrites the rest
    assert await sync_to_async(stream_text)(code, 0, "a") == {"attempt": 2, "text": "SecOND!"}


async def test_a_finished_battle_syncs_from_the_database(running):
    code, alice = running
    await sync_to_async(_chunk)(code, "a", 0, "The Nile, the Amazon")
    final = "The Nile, the Amazon, the Po"
    await Generation.objects.filter(battle__code=code).aupdate(status="done", output=final)
    await Battle.objects.filter(code=code).aupdate(status="ready")
    socket = _socket(code, alice)
    assert (await socket.connect())[0]
    state = await _state(socket)
    first = await _state(socket)  # a second sync right away is answered too (after a short pause)
    await socket.disconnect()
    assert state == first
    assert state["status"] == "ready" and state["can_vote"]
    assert {state["turns"][0][s]["output"] for s in "ab"} == {"The Nile, the Amazon, the Po"}
