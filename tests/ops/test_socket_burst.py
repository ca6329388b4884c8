"""A burst of websocket clients joining and leaving a leaderboard at once (a link shared, a page closed by a
crowd). Each join and leave is a Redis call of its own; redis-py's async pool refuses its 101st simultaneous
connection instead of waiting, which failed sockets with "Too many connections" until the channel layer's pool
was given room (settings: CHANNELS_REDIS_MAX_CONNECTIONS)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets
from asgiref.sync import sync_to_async

from ranking.services import leaderboard_group
from workers.events import group_publish

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 250


async def burst(url: str) -> list[dict]:
    ws_url = url.replace("http", "ws") + "/ws/leaderboard/text/"
    headers = {"Origin": url}
    sockets = await asyncio.gather(
        *(websockets.connect(ws_url, additional_headers=headers, open_timeout=20) for _ in range(CLIENTS))
    )
    await asyncio.sleep(0.3)
    event = {"type": "leaderboard.event", "event": {"type": "snapshot", "modality": "text", "burst": True}}
    await sync_to_async(group_publish)(leaderboard_group("text"), event)
    received = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 10) for ws in sockets))
    await asyncio.gather(*(ws.close() for ws in sockets))
    await asyncio.sleep(0.5)  # the server's disconnect handlers (group_discard) run now
    return [json.loads(message) for message in received]


def test_hundreds_of_sockets_joining_and_leaving_at_once_all_work(asgi_server, caplog):
    caplog.set_level(logging.ERROR)
    received = asyncio.run(burst(asgi_server.url))
    assert len(received) == CLIENTS and all(message.get("burst") for message in received)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage() + "\n" + (caplog.text[-2000:])
