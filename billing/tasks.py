"""Celery tasks of billing. Thin: each calls one domain function."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings

from billing import live_sync, streams
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
        # Debits from the stream were already taken from the live balance
        # by the settle script that queued them.
        written += len(
            record_usage([(event, charge) for _id, event, charge in batch], live_applied=True)
        )
        streams.acknowledge(conn, [entry_id for entry_id, _event, _charge in batch])
    return written


@shared_task(name="billing.tasks.sweep_expired_holds")
def sweep_expired_holds() -> int:
    """Release holds whose request vanished (its web process was killed)."""
    return live_sync.sweep_expired_holds()


@shared_task(name="billing.tasks.apply_pending_ledger")
def apply_pending_ledger() -> int:
    """Apply ledger entries the live balance missed (Redis was down at the time)."""
    return live_sync.apply_pending()
