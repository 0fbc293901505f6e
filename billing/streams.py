"""Reading the usage stream from a worker (the consumer side of usage_events)."""

from __future__ import annotations

import os
import socket

import redis
from django.conf import settings

from billing.usage_events import CONSUMER_GROUP, FIELD, FIELD_CHARGE, UsageEvent


def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(conn: redis.Redis) -> None:
    try:
        conn.xgroup_create(settings.USAGE_STREAM, CONSUMER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def claim_batch(
    conn: redis.Redis, *, count: int
) -> list[tuple[bytes, UsageEvent, int | None]]:
    """Events for this consumer: first any a dead consumer left unacknowledged
    for longer than USAGE_CLAIM_IDLE_S, then new ones."""
    consumer = consumer_name()
    # Redis 7 answers (next, entries, deleted); Redis 6.2 (next, entries).
    claimed = conn.xautoclaim(
        settings.USAGE_STREAM,
        CONSUMER_GROUP,
        consumer,
        min_idle_time=settings.USAGE_CLAIM_IDLE_S * 1000,
        start_id="0-0",
        count=count,
    )
    entries = list(claimed[1])
    if len(entries) < count:
        for _stream, fresh in conn.xreadgroup(
            CONSUMER_GROUP, consumer, {settings.USAGE_STREAM: ">"}, count=count - len(entries)
        ) or []:
            entries.extend(fresh)
    return [
        (entry_id, UsageEvent.decode(fields[FIELD.encode()]), _charge(fields))
        for entry_id, fields in entries
    ]


def _charge(fields: dict) -> int | None:
    raw = fields.get(FIELD_CHARGE.encode())
    return int(raw) if raw is not None else None


def acknowledge(conn: redis.Redis, entry_ids: list[bytes]) -> None:
    if entry_ids:
        pipe = conn.pipeline(transaction=True)
        pipe.xack(settings.USAGE_STREAM, CONSUMER_GROUP, *entry_ids)
        pipe.xdel(settings.USAGE_STREAM, *entry_ids)
        pipe.execute()


def dead_letter_stream() -> str:
    return f"{settings.USAGE_STREAM}:dead"

