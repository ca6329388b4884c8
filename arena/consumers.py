"""The battle websocket: joins the battle's group and relays its events. No business logic here."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from arena.models import Battle
from workers.events import battle_group

MAX_CLIENT_MESSAGE = 1024


@database_sync_to_async
def _owns_battle(code: str, voter_id: object) -> bool:
    return isinstance(voter_id, int) and Battle.objects.filter(code=code, voter_id=voter_id).exists()


class BattleConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        code = self.scope["url_route"]["kwargs"]["code"]
        session = self.scope.get("session")
        voter_id = session.get("voter_id") if session is not None else None
        if not await _owns_battle(code, voter_id):
            await self.close(code=4403)
            return
        self.group = battle_group(code)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page only listens; a ping gets a pong, anything else a clear error (never a disconnect)."""
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE:
            await self._send(
                {"type": "error", "error": f"send JSON text messages under {MAX_CLIENT_MESSAGE} bytes"}
            )
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self._send({"type": "error", "error": "messages must be JSON"})
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self._send({"type": "pong"})
            return
        await self._send(
            {"type": "error", "error": 'unknown message; this socket only accepts {"type": "ping"}'}
        )

    async def battle_event(self, message: dict[str, Any]) -> None:
        await self._send(message["event"])

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload))
