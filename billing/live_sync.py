"""Keeping the live (Redis) balances in step with the PostgreSQL ledger:
loading a tenant's live balance, applying ledger entries to it once,
releasing holds whose request vanished. Synchronous: used by workers,
commands and (through a thread) the request path when a tenant is first seen.
"""

from __future__ import annotations

import functools
import logging
import time

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from billing import live, redis_url
from billing.models import Balance, LedgerEntry, UsageRecord

log = logging.getLogger(__name__)


def scripts(conn: redis.Redis) -> dict:
    return {
        "load_tenant": conn.register_script(live.LOAD_TENANT),
        "load_key": conn.register_script(live.LOAD_KEY),
        "apply": conn.register_script(live.APPLY_ENTRY),
        "sweep": conn.register_script(live.SWEEP),
    }


@functools.cache
def client() -> redis.Redis:
    return redis_url.client(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=5)


def load_tenant(tenant_id: int, conn: redis.Redis | None = None) -> None:
    """Create the tenant's live balance from PostgreSQL if it does not exist."""
    conn = conn or client()
    with transaction.atomic():
        # Locks the balance row: no ledger entry commits between reading the
        # balance and reading which entries it includes.
        Balance.objects.get_or_create(tenant_id=tenant_id)
        balance = Balance.objects.select_for_update().get(tenant_id=tenant_id).balance_nanos
        unapplied = list(
            LedgerEntry.objects.filter(tenant_id=tenant_id, live_applied=False).values_list(
                "pk", "request_id"
            )
        )
        markers = [live.applied_key(tenant_id, pk, request_id) for pk, request_id in unapplied]
        loaded = scripts(conn)["load_tenant"](
            keys=[live.tenant_key(tenant_id)], args=[balance, *markers]
        )
        if loaded:
            # The loaded balance includes them: say so in PostgreSQL too, or
            # reconcile would count them as still missing from the live one.
            LedgerEntry.objects.filter(pk__in=[pk for pk, _ in unapplied]).update(live_applied=True)


def load_key(tenant_id: int, api_key_id: int, conn: redis.Redis | None = None) -> None:
    conn = conn or client()
    spent = (
        UsageRecord.objects.filter(api_key_id=api_key_id).aggregate(s=Sum("cost_nanos"))["s"] or 0
    )
    scripts(conn)["load_key"](keys=[live.key_key(tenant_id, api_key_id)], args=[spent])


def apply_entry(entry: LedgerEntry, conn: redis.Redis) -> bool:
    done = scripts(conn)["apply"](
        keys=[
            live.applied_key(entry.tenant_id, entry.pk, entry.request_id),
            live.tenant_key(entry.tenant_id),
        ],
        args=[entry.amount_nanos],
    )
    if done:
        LedgerEntry.objects.filter(pk=entry.pk).update(live_applied=True)
    return bool(done)


def apply_soon(entry_id: int) -> None:
    """Apply a just-committed entry now; if Redis is down, apply_pending will."""
    entry = LedgerEntry.objects.filter(pk=entry_id, live_applied=False).first()
    if entry is None:
        return
    try:
        apply_entry(entry, client())
    except redis.RedisError as exc:
        log.warning("live balance not reachable (%s); entry %s applied later", exc, entry_id)


def apply_pending(conn: redis.Redis | None = None) -> int:
    conn = conn or client()
    applied = 0
    for entry in LedgerEntry.objects.not_live().order_by("pk")[:1000]:
        applied += apply_entry(entry, conn)
    return applied


def sweep_expired_holds(conn: redis.Redis | None = None, *, now_ms: int | None = None) -> int:
    conn = conn or client()
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    released = 0
    sweep = scripts(conn)["sweep"]
    for holds, prefix in live.all_hold_sets():
        while True:
            count = sweep(keys=[holds], args=[now_ms, 500, prefix])
            released += count
            if count < 500:
                break
    return released


def live_balance(tenant_id: int, conn: redis.Redis | None = None) -> tuple[int, int] | None:
    """(balance, held) as the request path sees them, or None if not loaded."""
    conn = conn or client()
    balance, held = conn.hmget(live.tenant_key(tenant_id), "balance", "held")
    if balance is None:
        return None
    return int(balance), int(held or 0)
