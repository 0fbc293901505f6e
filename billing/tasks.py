"""Celery tasks of billing. Thin: each calls one domain function."""

from __future__ import annotations

from celery import shared_task

from billing import drain, live_sync, partitions

# One drain runs for at most this long, so a backlog is worked through in a
# few runs while a beat tick is never blocked for long.
DRAIN_BUDGET_S = 20.0


@shared_task(name="billing.tasks.drain_usage_events")
def drain_usage_events() -> int:
    """Write the records of the events waiting in the usage stream."""
    return drain.drain(budget_s=DRAIN_BUDGET_S)


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
