"""The battle websocket on the real channels-redis layer: who may join, what flows, what never does."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client

from arena.asgi import application
from arena.models import Battle, Generation, ModelEntry
from voting.models import Voter
from workers.services import generation_run

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(code: str, client: Client, origin: str = "http://localhost") -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}" if "sessionid" in client.cookies else ""
    headers = [(b"cookie", cookie.encode()), (b"origin", origin.encode())]
    return WebsocketCommunicator(application, f"/ws/battle/{code}/", headers=headers)


@pytest.fixture
def started(demo_models, alice) -> tuple[str, Client]:
    """A battle owned by Alice's session, written directly so no worker starts on it before we listen."""
    voter = Voter.objects.create(session_hash="alice")
    session = alice.session
    session["voter_id"] = voter.id
    session.save()
    alice.cookies["sessionid"] = session.session_key
    a, b = demo_models[:2]
    battle = Battle.objects.create(voter=voter, model_a=a, model_b=b, conversation=["Name three rivers."])
    for side, model in (("a", a), ("b", b)):
        Generation.objects.create(battle=battle, turn=0, side=side, model=model)
    return battle.code, alice


async def test_the_owner_receives_both_streams_and_no_event_names_a_model(started):
    code, alice = started
    socket = communicator(code, alice)
    connected, _ = await socket.connect()
    assert connected
    gen_ids = [g.id async for g in (await _battle(code)).generations.all()]
    runners = [threading.Thread(target=_run, args=(gid,)) for gid in gen_ids]
    for r in runners:
        r.start()
    events = []
    while not any(e["type"] == "status" for e in events):
        events.append(json.loads(await socket.receive_from(timeout=10)))
    await asyncio.to_thread(lambda: [r.join() for r in runners])
    await socket.disconnect()

    texts = {
        side: "".join(e["text"] for e in events if e["type"] == "chunk" and e["side"] == side)
        for side in "ab"
    }
    done = {e["side"]: e["output"] for e in events if e["type"] == "done"}
    assert texts == done and all(texts.values())
    assert events[-1] == {"type": "status", "status": "ready", "can_vote": True, "can_continue": True}
    names = await _all_model_names()
    blob = json.dumps(events).lower()
    assert not [n for n in names if n.lower() in blob]


async def test_another_session_is_refused_at_connect(started):
    code, _ = started
    bob = Client()
    bob.get("/")
    socket = communicator(code, bob)
    connected, close_code = await socket.connect()
    assert not connected and close_code == 4403


async def test_a_foreign_origin_is_refused(started):
    code, alice = started
    socket = communicator(code, alice, origin="https://evil.example")
    connected, _ = await socket.connect()
    assert not connected


async def test_bad_client_messages_get_an_error_and_keep_the_socket_open(started):
    code, alice = started
    socket = communicator(code, alice)
    assert (await socket.connect())[0]
    await socket.send_to(text_data="not json")
    assert (await _reply(socket))["error"] == "messages must be JSON"
    await socket.send_to(text_data=json.dumps({"type": "vote", "choice": "a"}))
    assert "unknown message" in (await _reply(socket))["error"]
    await socket.send_to(text_data="x" * 5000)
    assert "under 1024 bytes" in (await _reply(socket))["error"]
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await _reply(socket))["type"] == "error"
    await socket.send_to(text_data=json.dumps({"type": "ping"}))
    assert await _reply(socket) == {"type": "pong"}
    await socket.disconnect()


async def _reply(socket: WebsocketCommunicator) -> dict:
    """The next answer to a client message, skipping battle events (a worker may be generating)."""
    while True:
        message = json.loads(await socket.receive_from(timeout=5))
        if message["type"] in ("error", "pong"):
            return message


def _run(generation_id: int) -> None:
    try:
        generation_run(generation_id=generation_id)
    finally:
        connection.close()


async def _battle(code: str) -> Battle:
    return await Battle.objects.aget(code=code)


async def _all_model_names() -> list[str]:
    return [n async for m in ModelEntry.objects.all() for n in (m.slug, m.display_name)]
