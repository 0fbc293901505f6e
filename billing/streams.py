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

import redis
from django.conf import settings

from billing import redis_url, shards
from billing.usage_events import CONSUMER_GROUP, FIELD, FIELD_CHARGE, UsageEvent


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


def claim_batch(
    conn: redis.Redis, stream: str, *, count: int
) -> list[tuple[bytes, UsageEvent, int | None]]:
    """Events for this consumer: first any a dead consumer left unacknowledged
    for longer than USAGE_CLAIM_IDLE_S, then new ones."""
    consumer = consumer_name()
    # Redis 7 answers (next, entries, deleted); Redis 6.2 (next, entries).
    claimed = conn.xautoclaim(
        stream,
        CONSUMER_GROUP,
        consumer,
        min_idle_time=settings.USAGE_CLAIM_IDLE_S * 1000,
        start_id="0-0",
        count=count,
    )
    entries = list(claimed[1])
    if len(entries) < count:
        for _stream, fresh in (
            conn.xreadgroup(CONSUMER_GROUP, consumer, {stream: ">"}, count=count - len(entries))
            or []
        ):
            entries.extend(fresh)
    return [
        (entry_id, UsageEvent.decode(fields[FIELD.encode()]), _charge(fields))
        for entry_id, fields in entries
    ]


def _charge(fields: dict) -> int | None:
    raw = fields.get(FIELD_CHARGE.encode())
    return int(raw) if raw is not None else None


def acknowledge(conn: redis.Redis, stream: str, entry_ids: list[bytes]) -> None:
    if entry_ids:
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
