"""Celery tasks of billing. Thin: each calls one domain function."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings

from billing import streams
from billing.usage import record_usage

# One drain runs for at most this long, so a backlog is worked through in a
# few runs while a beat tick is never blocked for long.
DRAIN_BUDGET_S = 20.0


@shared_task(name="billing.tasks.drain_usage_events")
def drain_usage_events() -> int:
    """Write the records of the events waiting in the usage stream.

    Each batch commits its records before its entries are acknowledged, so a
    worker killed in between leaves them pending, to be claimed again and
    skipped as already written.
    """
    conn = streams.client()
    streams.ensure_group(conn)
    written = 0
    deadline = time.monotonic() + DRAIN_BUDGET_S
    while time.monotonic() < deadline:
        batch = streams.claim_batch(conn, count=settings.USAGE_BATCH_SIZE)
        if not batch:
            break
        written += len(record_usage([event for _id, event in batch]))
        streams.acknowledge(conn, [entry_id for entry_id, _event in batch])
    return written
