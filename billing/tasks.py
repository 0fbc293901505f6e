"""Celery tasks of billing. Thin: each calls one domain function."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError

from billing import live_sync, metrics, partitions, streams
from billing.usage import record_usage

log = logging.getLogger(__name__)

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
    names = streams.all_streams()
    for stream in names:
        streams.ensure_group(conn, stream)
    written = 0
    deadline = time.monotonic() + DRAIN_BUDGET_S
    while time.monotonic() < deadline:
        drained = 0
        for stream in names:  # one batch from each shard's stream in turn
            batch = streams.claim_batch(conn, stream, count=settings.USAGE_BATCH_SIZE)
            if not batch:
                continue
            drained += len(batch)
            written += _record_batch(conn, batch)
            streams.acknowledge(conn, stream, [entry_id for entry_id, _event, _charge in batch])
            now_ms = time.time() * 1000
            for _id, event, _charge in batch:
                metrics.USAGE_LAG.observe(max(now_ms - event.created_ms, 0) / 1000)
        if not drained:
            break
    return written


def _record_batch(conn, batch) -> int:
    # Debits from the stream were already taken from the live balance by the
    # settle script that queued them.
    try:
        written = len(record_usage([(e, c) for _id, e, c in batch], live_applied=True))
        metrics.USAGE_WRITTEN.inc(written)
        return written
    except IntegrityError:
        pass
    # One bad event must not stop everyone's billing: write them one by one
    # and set aside the ones PostgreSQL refuses, loudly, for an operator.
    written = 0
    for entry_id, event, charge in batch:
        try:
            new = len(record_usage([(event, charge)], live_applied=True))
            metrics.USAGE_WRITTEN.inc(new)
            written += new
        except IntegrityError as exc:
            log.error("usage event %s refused (%s); moved to the dead-letter stream",
                      event.request_id, exc.__cause__ or exc)
            streams.dead_letter(conn, entry_id, event, charge, reason=str(exc.__cause__ or exc))
    return written


@shared_task(name="billing.tasks.sweep_expired_holds")
def sweep_expired_holds() -> int:
    """Release holds whose request vanished (its web process was killed)."""
    return live_sync.sweep_expired_holds()


@shared_task(name="billing.tasks.apply_pending_ledger")
def apply_pending_ledger() -> int:
    """Apply ledger entries the live balance missed (Redis was down at the time)."""
    return live_sync.apply_pending()


@shared_task(name="billing.tasks.create_usage_partitions")
def create_usage_partitions() -> int:
    """Create the usage records' partitions for this month and the next ones
    ahead of time, so that no insert ever waits for (or fails on) DDL."""
    return len(partitions.ensure_ahead())
