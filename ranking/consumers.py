"""Leaderboard websocket: tells open pages that a new snapshot landed. It only relays."""

from __future__ import annotations

from typing import Any

from arena.consumers import GroupRelayConsumer
from arena.models import Modality
from ranking.services import leaderboard_group


class LeaderboardConsumer(GroupRelayConsumer):
    refuse_code = 4404

    async def group_for_scope(self) -> str | None:
        modality = self.scope["url_route"]["kwargs"]["modality"]
        return leaderboard_group(modality) if modality in Modality.values else None

    async def leaderboard_event(self, message: dict[str, Any]) -> None:
        await self.relay(message["event"])
