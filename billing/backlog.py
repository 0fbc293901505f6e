"""How far the usage drain is behind: the events still in the usage streams
and how long they have waited (read by reconcile and by /metrics)."""

from __future__ import annotations

from typing import Any, cast

import redis

from billing import streams


def _now_ms(conn: redis.Redis) -> float:
    # Redis's clock: the one that stamped the stream's entry ids.
    seconds, micros = cast(tuple[int, int], conn.time())
    return seconds * 1000 + micros / 1000


def _queued_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def pending_ages_s(conn: redis.Redis, *, older_than_s: float = 0) -> list[tuple[str, float]]:
    """(request id, seconds since queued) of every event still in the usage
    stream (unwritten, or written and not yet acknowledged) queued more than
    ``older_than_s`` ago, oldest first. Ages are on Redis's clock, the one
    that stamped the entries."""
    now_ms = _now_ms(conn)
    cutoff_ms = int(now_ms - older_than_s * 1000)
    if cutoff_ms < 0:
        return []
    aged = []
    for stream in streams.all_streams():
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], conn.xrange(stream, "-", cutoff_ms))
        for entry_id, fields in entries:
            queued_ms = _queued_ms(entry_id)
            try:
                name = streams.event_of(fields).request_id
            except ValueError:
                name = f"(undecodable entry {entry_id.decode()})"
            aged.append((name, max(now_ms - queued_ms, 0) / 1000))
    return sorted(aged, key=lambda pair: -pair[1])


def oldest_pending_age_s(conn: redis.Redis) -> float:
    """Seconds the oldest event in the usage streams has waited (0: none).

    Written events are deleted from a stream when acknowledged, so each
    stream's first entry is the oldest one still waiting in it."""
    firsts = [
        _queued_ms(first[0][0])
        for stream in streams.all_streams()
        if (first := cast(Any, conn.xrange(stream, "-", "+", count=1)))
    ]
    if not firsts:
        return 0.0
    return max(_now_ms(conn) - min(firsts), 0) / 1000
