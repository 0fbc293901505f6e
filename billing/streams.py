"""The usage streams, and reading them from a worker (the consumer side of
usage_events).

The stream is split into one per hash tag (billing/shards.py): a tenant's
events go to the stream under its tag, in the same slot as its balance, so
the settle script can append in the step that takes the money, and no one
Redis Cluster shard carries every request's event. Each stream has its own
consumer group; a drain reads every stream in turn.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import redis
from django.conf import settings

from billing import redis_url, shards
from billing.usage_events import CONSUMER_GROUP, FIELD, FIELD_CHARGE, UsageEvent

FIELD_KEY = FIELD.encode()


def stream_for(tenant_id: int) -> str:
    """The stream a tenant's usage events are appended to."""
    return f"{settings.USAGE_STREAM}:{shards.tag(tenant_id)}"


def all_streams() -> list[str]:
    return [f"{settings.USAGE_STREAM}:{tag}" for tag in shards.all_tags()]


def client() -> redis.Redis:
    return redis_url.client(settings.REDIS_URL)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(conn: redis.Redis, stream: str) -> None:
    try:
        conn.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Entry(NamedTuple):
    """A usage event claimed from a stream."""

    stream: str
    entry_id: bytes
    event: UsageEvent
    charge: int | None  # what the live balance charged for it (None: not charged live)


@dataclass
class Claimed:
    """What one round of claims took from the streams."""

    entries: list[Entry] = field(default_factory=list)
    # (stream, entry id, its fields, why) of entries that hold no usage
    # event: set aside to the dead-letter stream rather than retried for ever.
    undecodable: list[tuple[str, bytes, dict[bytes, bytes], str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries) + len(self.undecodable)


def claim(conn: redis.Redis, names: list[str], *, count: int) -> Claimed:
    """Events for this consumer from every stream named, in one round trip:
    from each, up to ``count`` a dead consumer left unacknowledged for longer
    than USAGE_CLAIM_IDLE_S and up to ``count`` new ones."""
    consumer = consumer_name()
    pipe = conn.pipeline(transaction=False)
    for stream in names:
        pipe.xautoclaim(
            stream,
            CONSUMER_GROUP,
            consumer,
            min_idle_time=settings.USAGE_CLAIM_IDLE_S * 1000,
            start_id="0-0",
            count=count,
        )
        pipe.xreadgroup(CONSUMER_GROUP, consumer, {stream: ">"}, count=count)
    replies = pipe.execute()
    batch = Claimed()
    for n, stream in enumerate(names):
        # XAUTOCLAIM answers (next, entries, deleted) (Redis 7; 6.2 without deleted).
        raw = list(replies[2 * n][1])
        for _stream, fresh in replies[2 * n + 1] or []:
            raw.extend(fresh)
        for entry_id, fields in raw:
            if entry_id is None:
                continue  # Redis 6.2: an entry deleted while pending (never by us)
            try:
                batch.entries.append(Entry(stream, entry_id, event_of(fields), charge_of(fields)))
            except ValueError as exc:
                batch.undecodable.append((stream, entry_id, fields, f"undecodable: {exc}"))
    return batch


def event_of(fields: dict[bytes, bytes]) -> UsageEvent:
    """The usage event a stream entry holds; ValueError, saying why, if none."""
    try:
        raw = fields[FIELD_KEY]
    except KeyError:
        raise ValueError(f"no {FIELD!r} field") from None
    return UsageEvent.decode(raw)


def charge_of(fields: dict) -> int | None:
    """What the live balance charged for a stream entry's event (None: not
    charged live); ValueError if the charge is no number."""
    raw = fields.get(FIELD_CHARGE.encode())
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"charge {raw[:40]!r} is not a number") from None


def acknowledge(conn: redis.Redis, entries: list[Entry]) -> None:
    """Acknowledge written entries and delete them from their streams, one
    MULTI a stream: an entry deleted but still pending would be handed back
    by Redis 6.2's XAUTOCLAIM as (nil, nil) for ever, one acknowledged but
    not deleted would wait in the stream for ever."""
    by_stream: dict[str, list[bytes]] = defaultdict(list)
    for entry in entries:
        by_stream[entry.stream].append(entry.entry_id)
    for stream, entry_ids in by_stream.items():
        pipe = conn.pipeline(transaction=True)
        pipe.xack(stream, CONSUMER_GROUP, *entry_ids)
        pipe.xdel(stream, *entry_ids)
        pipe.execute()


def dead_letter_stream(stream: str) -> str:
    """Where one usage stream's refused events are kept: under its hash tag,
    so that burying one (copy, acknowledge, delete) is one MULTI on one shard."""
    return f"{stream}:dead"


def source_stream(dead_stream: str) -> str:
    """The usage stream whose dead letters ``dead_stream`` keeps."""
    return dead_stream.removesuffix(":dead")
