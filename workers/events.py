"""Fan-out of battle progress to the browsers watching it.

Events never carry a model's identity (ARCHITECTURE rule 4): only side, turn, text and status.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def battle_group(code: str) -> str:
    return f"battle-{code}"


def battle_publish(code: str, event: dict[str, Any]) -> None:
    """Best effort: the database is the truth, so a lost event only costs the page a refetch."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(battle_group(code), {"type": "battle.event", "event": event})
    except Exception:  # a channel-layer outage must never fail a generation
        logger.warning("could not publish %s event for battle %s", event.get("type"), code, exc_info=True)
