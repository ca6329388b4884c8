"""Websockets that relay a channel-layer group to the page. No business logic here."""

from __future__ import annotations

import json
import re
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from arena.models import Battle
from workers.events import battle_group

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
        await self.relay(
            {"type": "error", "error": 'unknown message; this socket only accepts {"type": "ping"}'}
        )

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


class BattleConsumer(GroupRelayConsumer):
    """Only the battle's own voter (by session) may listen: the stream holds their prompt and answers."""

    async def group_for_scope(self) -> str | None:
        code = self.scope["url_route"]["kwargs"]["code"]
        session = self.scope.get("session")
        voter_id = session.get("voter_id") if session is not None else None
        return battle_group(code) if await _owns_battle(code, voter_id) else None

    async def battle_event(self, message: dict[str, Any]) -> None:
        await self.relay(message["event"])


class NoRouteConsumer(AsyncWebsocketConsumer):
    """The last websocket route: a path no other route takes is refused (4404) instead of raising in the
    router, which the server would log as a crash and answer as a 500."""

    async def connect(self) -> None:
        await self.close(code=4404)
