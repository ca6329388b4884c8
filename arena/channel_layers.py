"""A channel layer for the embedded default: in memory, but safe to publish to from worker threads.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the server's event loop. The
in-process Celery worker publishes from its own threads (each with its own loop via async_to_sync),
and an asyncio.Queue touched from another loop neither wakes its reader nor is thread-safe. So every
send is carried over to the loop that receives, and all state changes happen on that one loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer


class EmbeddedChannelLayer(InMemoryChannelLayer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._home_loop: asyncio.AbstractEventLoop | None = None

    async def _on_home_loop(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        home = self._home_loop
        here = asyncio.get_running_loop()
        if home is None or home is here or home.is_closed():
            return await call(*args)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(*args), home))

    async def receive(self, channel: str) -> dict:
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict) -> None:
        await self._on_home_loop(super().send, channel, message)

    async def group_send(self, group: str, message: dict) -> None:
        await self._on_home_loop(super().group_send, group, message)

    async def group_add(self, group: str, channel: str) -> None:
        await self._on_home_loop(super().group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._on_home_loop(super().group_discard, group, channel)
