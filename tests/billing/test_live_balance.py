"""The live Redis balance kept in step with the PostgreSQL ledger: expired holds
swept, entries written while Redis was down applied once, and no drift
reported for a tenant just loaded (billing/live_sync.py, billing/tasks.py,
billing/reconcile.py).
"""

from __future__ import annotations

import time

import pytest
import redis

from billing import ledger, live, live_sync
from billing.models import LedgerEntry
from billing.reconcile import reconcile
from billing.tasks import apply_pending_ledger, sweep_expired_holds
from tests.helpers import DEAD_REDIS_URL, balance_row, funded_key, live_now

server = pytest.mark.django_db(transaction=True)


# --- keeping the live balance in step ----------------------------------------------------


@server
def test_the_sweeper_releases_expired_holds_and_only_those(group):
    tenant, api_key, _secret = funded_key(group, requests=25, name="sweep")  # 1,000 nanos
    live_sync.load_tenant(tenant.pk)
    conn = live_sync.client()
    place = conn.register_script(live.HOLD)
    now_ms = int(time.time() * 1000)
    vanished = live.hold_member("req_vanished", tenant.pk, api_key.pk, 300, False)
    in_flight = live.hold_member("req_in_flight", tenant.pk, api_key.pk, 200, False)
    keys = [
        live.tenant_key(tenant.pk),
        live.key_key(tenant.pk, api_key.pk),
        live.holds_key(tenant.pk),
    ]
    assert place(keys=keys, args=[300, -1, vanished, now_ms - 1000, -1]) == 1
    assert place(keys=keys, args=[200, -1, in_flight, now_ms + 60_000, -1]) == 1
    assert live_now(tenant.pk) == (1_000, 500)

    sweep_expired_holds()

    assert live_now(tenant.pk) == (1_000, 200)
    assert conn.zrange(live.holds_key(tenant.pk), 0, -1) == [in_flight.encode()]


@server
def test_a_ledger_entry_written_while_redis_is_down_reaches_the_live_balance_once(
    group, monkeypatch
):
    tenant, _api_key, _secret = funded_key(group, requests=25, name="offline")
    live_sync.load_tenant(tenant.pk)
    apply_pending_ledger()
    assert live_now(tenant.pk) == (1_000, 0)
    dead = redis.Redis.from_url(DEAD_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    monkeypatch.setattr(live_sync, "client", lambda: dead)

    entry = ledger.top_up(tenant=tenant, amount_nanos=500, reason="paid while Redis was down")

    entry.refresh_from_db()
    assert entry.live_applied is False
    monkeypatch.undo()
    assert live_now(tenant.pk) == (1_000, 0)

    apply_pending_ledger()
    assert live_now(tenant.pk) == (1_500, 0)
    apply_pending_ledger()
    assert live_now(tenant.pk) == (1_500, 0)
    entry.refresh_from_db()
    assert entry.live_applied is True
    assert balance_row(tenant) == 1_500


@server
def test_reconcile_finds_no_drift_right_after_a_tenant_is_loaded_live(group):
    tenant, _api_key, _secret = funded_key(group, requests=25, name="fresh")
    # The top-up could not be applied live: the tenant was not loaded yet.
    assert LedgerEntry.objects.get(tenant=tenant).live_applied is False

    live_sync.load_tenant(tenant.pk)

    assert live_now(tenant.pk) == (1_000, 0)  # the live balance is right
    [check] = [c for c in reconcile().tenants if c.tenant == tenant.slug]
    assert check.live_drift == 0
    assert check.healthy
