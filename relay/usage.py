"""Handing usage events to the workers, durably.

The event goes onto the Redis stream the workers drain. If Redis cannot take
it, the record is written straight to PostgreSQL instead: a served request is
never left unbilled because the queue was down.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from redis.exceptions import RedisError

from billing.usage import record_usage
from billing.usage_events import FIELD, UsageEvent
from relay import connections

log = logging.getLogger(__name__)

_record_now = sync_to_async(record_usage, thread_sensitive=False)


async def publish(event: UsageEvent) -> None:
    try:
        await connections.redis().xadd(settings.USAGE_STREAM, {FIELD: event.encode()})
    except (RedisError, OSError) as exc:
        log.warning(
            "usage stream unavailable (%s); writing %s to the database directly",
            type(exc).__name__,
            event.request_id,
        )
        await _record_now([event])
