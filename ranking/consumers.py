"""Leaderboard websocket: tells open pages that a new snapshot landed. It only relays."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from arena.models import Modality
from ranking.services import leaderboard_group


class LeaderboardConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        modality = self.scope["url_route"]["kwargs"]["modality"]
        if modality not in Modality.values:
            await self.close(code=4404)
            return
        self.group = leaderboard_group(modality)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": "this socket accepts no messages"}))

    async def leaderboard_event(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message["event"]))
