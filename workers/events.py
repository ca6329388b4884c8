"""Fan-out of battle progress to the browsers watching it.

Events never carry a model's identity (ARCHITECTURE rule 4): only side, turn, text and status.

Publishing goes through one long-lived event loop per process. `async_to_sync` would start a fresh
loop for every call, and channels-redis keeps its connections per loop, so each streamed token would
open a new Redis connection. Callers wait for their own send, which keeps each stream's events in order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="channel-publisher", daemon=True).start()
            _loop = loop
        return _loop


def battle_group(code: str) -> str:
    return f"battle-{code}"


def group_publish(group: str, message: dict[str, Any]) -> None:
    """Send to a channel-layer group and wait for it. Best effort: a failure is logged, never raised."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _publisher_loop())
        future.result(timeout=PUBLISH_TIMEOUT)
    except Exception:  # a channel-layer outage must never fail a generation or a vote
        logger.warning("could not publish %s to %s", message.get("type"), group, exc_info=True)


def battle_publish(code: str, event: dict[str, Any]) -> None:
    """The database is the truth, so a lost event only costs the page a refetch."""
    group_publish(battle_group(code), {"type": "battle.event", "event": event})
