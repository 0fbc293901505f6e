"""Proving the books balance: the checks behind ``manage.py reconcile``."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db.models import Sum

from accounts.models import Tenant
from billing import backlog, live, live_sync, streams
from billing.dead_letters import DeadLetter, buried
from billing.models import Balance, LedgerEntry, UsageRecord


@dataclass
class TenantCheck:
    tenant: str
    balance_nanos: int
    # Balance row minus the sum of the ledger.
    ledger_drift: int = 0
    # Usage debits in the ledger minus the costs of the usage records.
    usage_drift: int = 0
    # Live balance minus what PostgreSQL says it should be (None: not loaded).
    live_drift: int | None = None
    stale_holds: int = 0

    @property
    def healthy(self) -> bool:
        return not (self.ledger_drift or self.usage_drift or self.live_drift or self.stale_holds)


@dataclass
class Report:
    tenants: list[TenantCheck] = field(default_factory=list)
    queued_events: int = 0
    # Events PostgreSQL refused (billing/drain.py): each needs an operator.
    dead: list[DeadLetter] = field(default_factory=list)
    # (request id, age in seconds) of events unwritten past USAGE_PENDING_BOUND_S.
    overdue: list[tuple[str, float]] = field(default_factory=list)

    @property
    def dead_letters(self) -> int:
        return len(self.dead)

    @property
    def healthy(self) -> bool:
        return not self.dead and not self.overdue and all(check.healthy for check in self.tenants)


def _sums(model, value: str, **filters) -> dict[int, int]:
    rows = model.objects.filter(**filters).values("tenant_id").annotate(total=Sum(value))
    return {row["tenant_id"]: row["total"] or 0 for row in rows}


def _pending_charges(conn: redis.Redis) -> tuple[dict[int, int], int]:
    """Charges taken live whose events no worker has written yet, per tenant."""
    entries = [entry for stream in streams.all_streams() for entry in conn.xrange(stream)]
    events = []
    for _id, fields in entries:
        try:
            events.append((streams.event_of(fields), streams.charge_of(fields) or 0))
        except ValueError:
            continue  # not an event: the drain dead-letters it, and it is named then
    written = set(
        UsageRecord.objects.filter(
            request_id__in=[event.request_id for event, _ in events]
        ).values_list("request_id", flat=True)
    )
    pending: dict[int, int] = defaultdict(int)
    for event, charge in events:
        if event.request_id not in written:
            pending[event.tenant_id] += charge
    return pending, len(entries)


def _stale_holds(conn: redis.Redis) -> dict[int, int]:
    """Holds older than the longest a live request can take."""
    longest_s = settings.RELAY_UPSTREAM_READ_TIMEOUT_S * settings.RELAY_MAX_ATTEMPTS
    # A hold's score is when it was placed plus RELAY_HOLD_TTL_S.
    placed_before_ms = (time.time() - longest_s) * 1000
    expires_before_ms = placed_before_ms + settings.RELAY_HOLD_TTL_S * 1000
    stale: dict[int, int] = defaultdict(int)
    for holds, _prefix in live.all_hold_sets():
        for member in conn.zrangebyscore(holds, "-inf", expires_before_ms):
            stale[int(member.decode().split("|")[1])] += 1
    return stale


def reconcile(conn: redis.Redis | None = None) -> Report:
    conn = conn or live_sync.client()
    ledger = _sums(LedgerEntry, "amount_nanos")
    debits = _sums(LedgerEntry, "amount_nanos", kind=LedgerEntry.Kind.USAGE)
    costs = _sums(UsageRecord, "cost_nanos")
    unapplied = _sums(LedgerEntry, "amount_nanos", live_applied=False)
    balances = dict(Balance.objects.values_list("tenant_id", "balance_nanos"))
    pending, queued = _pending_charges(conn)
    stale = _stale_holds(conn)
    dead = buried(conn)
    # A dead letter was charged live but is not in PostgreSQL: counted apart,
    # so the live drift stays 0 and the event is named instead.
    for letter in dead:
        if letter.tenant_id is not None:  # an undecodable one names no tenant
            pending[letter.tenant_id] += letter.charged_live_nanos

    report = Report(
        queued_events=queued,
        dead=dead,
        overdue=backlog.pending_ages_s(conn, older_than_s=settings.USAGE_PENDING_BOUND_S),
    )
    for tenant in Tenant.objects.order_by("slug"):
        balance = balances.get(tenant.pk, 0)
        check = TenantCheck(
            tenant=tenant.slug,
            balance_nanos=balance,
            ledger_drift=balance - ledger.get(tenant.pk, 0),
            usage_drift=-debits.get(tenant.pk, 0) - costs.get(tenant.pk, 0),
            stale_holds=stale.get(tenant.pk, 0),
        )
        live_now = live_sync.live_balance(tenant.pk, conn)
        if live_now is not None:
            expected = balance - unapplied.get(tenant.pk, 0) - pending.get(tenant.pk, 0)
            check.live_drift = live_now[0] - expected
        report.tenants.append(check)
    return report
