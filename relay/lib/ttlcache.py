"""A small in-process cache for configuration read on the hot path.

Keys and routing tables change rarely and are read on every request, so each
web process keeps them for a few seconds (``RELAY_CONFIG_CACHE_TTL_S``)
instead of asking PostgreSQL each time. Concurrent misses for the same entry
share one load, so a burst of requests with a new key costs one query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, *, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._loading: dict[Hashable, asyncio.Future] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(value)
            if len(self._entries) >= self.max_entries:
                # Crude but bounded: a flood of distinct keys cannot grow memory.
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, value)
            return value
        finally:
            del self._loading[key]

    def clear(self) -> None:
        self._entries.clear()
