"""Channel health's counting on the request path: what each channel's calls
came to, tallied in the process and flushed to Redis about once a second
(``RELAY_HEALTH_FLUSH_S``) by a task of its own, so a request never waits
on it: noting an outcome is a dictionary update.

A flush runs one script per channel seen. It keeps each channel's run of
failures (``failures`` causes, relay/pipeline/causes.py) in Redis, shared
by every web process: a success anywhere ends the run, and
``RELAY_HEALTH_FAILURES`` failures within ``RELAY_HEALTH_WINDOW_S`` of the
run's first trip the channel. A refused credential or an exhausted quota
trips it at once. A tripped channel is written to one Redis hash, which
the health task (relay/health/tasks.py) turns into a disable in
PostgreSQL; every web process then drops it from its routes when its
catalog cache expires (relay/catalog/routes.py, ``RELAY_CONFIG_CACHE_TTL_S``).

A process that dies loses at most its last second of counts; a run of
failures is then a little longer, never a false disable.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from relay.connections import pools
from relay.pipeline import causes

if TYPE_CHECKING:
    from relay.pipeline.trace import Trace
    from relay.pipeline.upstream import ChannelFailed
    from relay.providers.base import ChannelRoute

log = logging.getLogger(__name__)

# One hash tag: the script writes a channel's run and the tripped hash together,
# and on a Redis Cluster a script's keys must share a slot.
TRIPPED_KEY = "relay:{health}:tripped"
STREAK_PREFIX = "relay:{health}:streak:"

# KEYS: the channel's run of failures (a hash: first, count), the tripped hash.
# ARGV: channel id, served (0/1: a success since the last flush, before the
# failures that follow it), failures after it, the fatal cause ("" if none),
# detail, now (ms), window (ms), threshold.
# Returns 1 when the channel tripped.
RECORD = """
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
if ARGV[4] ~= '' then
  redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[4] .. '|' .. ARGV[5])
  redis.call('DEL', KEYS[1])
  return 1
end
local failures = tonumber(ARGV[3])
if failures == 0 then return 0 end
local now, window = tonumber(ARGV[6]), tonumber(ARGV[7])
local first = tonumber(redis.call('HGET', KEYS[1], 'first') or '0')
local count
if first == 0 or now - first > window then
  redis.call('HSET', KEYS[1], 'first', now, 'count', failures)
  count = failures
else
  count = redis.call('HINCRBY', KEYS[1], 'count', failures)
end
redis.call('PEXPIRE', KEYS[1], window)
if count >= tonumber(ARGV[8]) then
  redis.call('HSETNX', KEYS[2], ARGV[1], 'failures|' .. ARGV[5])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


@dataclass
class _Seen:
    """One channel's calls since the last flush, in the order that matters."""

    served: bool = False
    failures: int = 0  # ``failures`` causes since the last success
    fatal: str = ""  # credential or quota, if any call said so
    detail: str = ""


class Tally:
    """One event loop's counts, flushed by a task of that loop."""

    def __init__(self) -> None:
        self._seen: dict[int, _Seen] = {}
        self._scheduled = False
        self._flushing: set[asyncio.Task] = set()  # referenced until done

    def served(self, channel_id: int) -> None:
        seen = self._entry(channel_id)
        seen.served, seen.failures = True, 0

    def failed(self, channel_id: int, cause: str | None, detail: str) -> None:
        if cause is None:  # a rate limit: not the channel's fault
            return
        seen = self._entry(channel_id)
        if cause == causes.FAILURES:
            seen.failures += 1
        elif not seen.fatal:
            seen.fatal = cause
        seen.detail = detail[:200]

    def _entry(self, channel_id: int) -> _Seen:
        seen = self._seen.get(channel_id)
        if seen is None:
            seen = self._seen[channel_id] = _Seen()
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(settings.RELAY_HEALTH_FLUSH_S, self._start)
        return seen

    def _start(self) -> None:
        self._scheduled = False
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> int:
        """Send what was seen; the number of channels that tripped."""
        seen, self._seen = self._seen, {}
        if not seen:
            return 0
        client = pools.redis()
        now_ms = int(time.time() * 1000)
        tripped = 0
        try:
            for channel_id, counts in seen.items():
                tripped += await client.eval(
                    RECORD,
                    2,
                    f"{STREAK_PREFIX}{channel_id}",
                    TRIPPED_KEY,
                    channel_id,
                    int(counts.served),
                    counts.failures,
                    counts.fatal,
                    counts.detail,
                    now_ms,
                    int(settings.RELAY_HEALTH_WINDOW_S * 1000),
                    settings.RELAY_HEALTH_FAILURES,
                )
        except pools.REDIS_FAILURES as exc:
            # Health counting is best effort: Redis away costs a run of
            # failures its last second, and requests nothing.
            log.warning("channel health counts not flushed: %s", type(exc).__name__)
        return tripped


_tallies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tally() -> Tally:
    """This event loop's tally."""
    loop = asyncio.get_running_loop()
    found = _tallies.get(loop)
    if found is None:
        found = _tallies[loop] = Tally()
    return found


def failed(trace: Trace, channel: ChannelRoute, failure: ChannelFailed) -> None:
    """A call of this request that ``channel`` failed: in the request's trace
    (log, metrics, the usage event's failed channels) and in the tally."""
    trace.channel_failed(channel.channel_id, channel.name, failure.reason, failure.kind)
    tally().failed(channel.channel_id, failure.cause, failure.detail or failure.reason)
