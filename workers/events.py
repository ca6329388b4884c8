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
from django.conf import settings
from django.core.cache import cache

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


def stream_key(code: str, turn: int, side: str) -> str:
    return f"arena:stream:{code}:{turn}:{side}"


# What this process last recorded per side: a pacer publishes one side's chunks in order from one thread, so
# the next chunk extends it and the read of the record back from the cache (a round trip per 50 ms tick) is
# skipped. Dropped when the side ends here; cleared whole past a bound.
_recorded: dict[str, tuple[object, str]] = {}
_recorded_lock = threading.Lock()
_RECORDED_MAX = 10_000


def _recorded_here(key: str, attempt: object, offset: int) -> str | None:
    with _recorded_lock:
        held = _recorded.get(key)
    if held is not None and held[0] == attempt and len(held[1]) == offset:
        return held[1]
    return None


def _recorded_forget(code: str, event: dict[str, Any]) -> None:
    with _recorded_lock:
        _recorded.pop(stream_key(code, int(event.get("turn", 0)), str(event.get("side", ""))), None)


def stream_record(code: str, event: dict[str, Any]) -> None:
    """Keep the text a side has published so far (this attempt's), so a socket that joins or rejoins
    mid-stream resumes from its last offset (arena.consumers, "sync") instead of the page polling the
    database, which is written only every ARENA_STREAM_FLUSH_SECONDS. One side's chunks come from one
    thread at a time (workers/pacing.py), so a read-modify-write per chunk keeps them in order.
    Best effort."""
    try:
        key = stream_key(code, int(event["turn"]), str(event["side"]))
        attempt, offset, text = event.get("attempt"), int(event["offset"]), str(event["text"])
        have = _recorded_here(key, attempt, offset)
        if have is None:  # not this process's last write (the other side's pacer sent a first chunk): read it
            held = cache.get(key) if offset else None
            have = held["text"] if held and held.get("attempt") == attempt else ""
        if offset > len(have):
            return  # a chunk past a gap (a lost write): keep the prefix we know
        recorded = have[:offset] + text
        cache.set(key, {"attempt": attempt, "text": recorded}, settings.ARENA_GENERATION_HARD_LIMIT + 60)
        with _recorded_lock:
            if len(_recorded) >= _RECORDED_MAX:  # sides finished in another process are never popped here
                _recorded.clear()
            _recorded[key] = (attempt, recorded)
    except Exception:  # the cache is a convenience for resuming pages; never fail a generation for it
        logger.warning("could not record a chunk of %s", code, exc_info=True)


def stream_text(code: str, turn: int, side: str) -> dict[str, Any] | None:
    """{"attempt", "text"}: what this side has published so far, or None if not recorded."""
    try:
        return cache.get(stream_key(code, turn, side))
    except Exception:
        logger.warning("could not read the stream of %s", code, exc_info=True)
        return None


def battle_publish(code: str, event: dict[str, Any]) -> None:
    """The database is the truth, and a "done" carries the side's whole text, so a lost event only costs the
    page a resync (one state message on its socket)."""
    if event.get("type") == "chunk":
        stream_record(code, event)  # before the send: a socket joining meanwhile finds it in one or the other
    elif event.get("type") in ("done", "failed"):
        _recorded_forget(code, event)
    group_publish(battle_group(code), {"type": "battle.event", "event": event})
