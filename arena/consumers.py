"""Websockets that relay a channel-layer group to the page. No business logic here."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from arena.models import Battle
from workers.events import battle_group, stream_text

MAX_CLIENT_MESSAGE = 1024


class GroupRelayConsumer(AsyncWebsocketConsumer):
    """Joins the group `group_for_scope` names (None refuses the socket) and forwards its events.

    The page only listens: a ping gets a pong, anything else a clear error, never a disconnect.
    """

    group: str | None = None
    refuse_code = 4403

    async def group_for_scope(self) -> str | None:
        raise NotImplementedError

    async def connect(self) -> None:
        self.group = await self.group_for_scope()
        if self.group is None:
            await self.close(code=self.refuse_code)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE:
            await self.relay(
                {"type": "error", "error": f"send JSON text messages under {MAX_CLIENT_MESSAGE} bytes"}
            )
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.relay({"type": "error", "error": "messages must be JSON"})
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.relay({"type": "pong"})
            return
        if isinstance(message, dict) and await self.answer(message):
            return
        error = f"unknown message; this socket only accepts {self.accepts}"
        await self.relay({"type": "error", "error": error})

    accepts = '{"type": "ping"}'

    async def answer(self, message: dict[str, Any]) -> bool:
        """A subclass's own client messages: True once answered."""
        return False

    async def relay(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload))


# Battle codes are secrets.token_urlsafe(12) (arena.models.public_code); anything else cannot be one, and a
# NUL in it would reach PostgreSQL as an error rather than a refusal.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")


@database_sync_to_async
def _owns_battle(code: str, voter_id: object) -> bool:
    if not isinstance(voter_id, int) or not _CODE.fullmatch(code):
        return False
    return Battle.objects.filter(code=code, voter_id=voter_id).exists()


@database_sync_to_async
def _synced_state(code: str) -> dict[str, Any] | None:
    """The battle's page state (arena.selectors.battle_state, what GET /api/battles/<code> answers), with each
    generating side's text as far as it was published (workers.events.stream_text): the database is written
    only every ARENA_STREAM_FLUSH_SECONDS, the published record at every chunk (never ahead of the page)."""
    from arena.selectors import battle_state

    battle = Battle.objects.select_related("model_a", "model_b").filter(code=code).first()
    if battle is None:
        return None
    state = battle_state(battle)
    for turn, sides in enumerate(state["turns"]):
        for key in ("a", "b"):
            side = sides[key]
            if side["status"] not in ("queued", "running") or state["modality"] != "text":
                continue
            published = stream_text(code, turn, key)
            if (
                published
                and published.get("attempt") == side["attempt"]
                and len(published["text"]) > len(side["output"])
                and published["text"].startswith(side["output"])
            ):
                side.update(status="running", output=published["text"])
    return state


class BattleConsumer(GroupRelayConsumer):
    """Only the battle's own voter (by session) may listen: the stream holds their prompt and answers.

    {"type": "sync"} asks for the battle's whole state as one {"type": "state", "state": ...} message: the
    page sends it when its socket opens (or reopens) and after a gap in a side's chunk offsets, so it resumes
    from its last offset without polling the API. Events that follow the state are newer than it."""

    accepts = '{"type": "ping"} or {"type": "sync"}'
    code = ""
    synced_at = 0.0
    SYNC_INTERVAL = 0.25  # seconds between two state reads of one socket (each is a few queries)

    async def group_for_scope(self) -> str | None:
        code = self.scope["url_route"]["kwargs"]["code"]
        session = self.scope.get("session")
        voter_id = session.get("voter_id") if session is not None else None
        if not await _owns_battle(code, voter_id):
            return None
        self.code = code
        return battle_group(code)

    async def answer(self, message: dict[str, Any]) -> bool:
        if message.get("type") != "sync":
            return False
        wait = self.synced_at + self.SYNC_INTERVAL - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.synced_at = time.monotonic()
        state = await _synced_state(self.code)
        if state is not None:
            await self.relay({"type": "state", "state": state})
        return True

    async def battle_event(self, message: dict[str, Any]) -> None:
        await self.relay(message["event"])


class NoRouteConsumer(AsyncWebsocketConsumer):
    """The last websocket route: a path no other route takes is refused (4404) instead of raising in the
    router, which the server would log as a crash and answer as a 500."""

    async def connect(self) -> None:
        await self.close(code=4404)
