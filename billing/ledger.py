"""Moving money in PostgreSQL: every change to a balance is a ledger entry,
written in the same transaction as the balance row it moves."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F, Sum

from accounts.models import Tenant
from billing.models import Balance, LedgerEntry

log = logging.getLogger(__name__)


class InsufficientBalance(Exception):
    """A debit asked for more than the balance holds."""


def _locked_balance(tenant_id: int) -> Balance:
    # The row lock orders every movement of one tenant's money: two
    # concurrent entries can never both read the same old balance.
    Balance.objects.get_or_create(tenant_id=tenant_id)
    return Balance.objects.select_for_update().get(tenant_id=tenant_id)


def post(
    *,
    tenant: Tenant | int,
    kind: str,
    amount_nanos: int,
    reason: str = "",
    created_by=None,
) -> LedgerEntry:
    """Write one ledger entry and move the balance by it, atomically.

    Refuses (InsufficientBalance) a debit larger than the balance: the
    balance is never below zero.
    """
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    with transaction.atomic():
        balance = _locked_balance(tenant_id)
        if balance.balance_nanos + amount_nanos < 0:
            raise InsufficientBalance(
                f"tenant {tenant_id} holds {balance.balance_nanos} nanos, "
                f"cannot debit {-amount_nanos}"
            )
        entry = LedgerEntry.objects.create(
            tenant_id=tenant_id,
            kind=kind,
            amount_nanos=amount_nanos,
            reason=reason,
            created_by=created_by,
        )
        Balance.objects.filter(tenant_id=tenant_id).update(
            balance_nanos=F("balance_nanos") + amount_nanos
        )
    # Imported here: the live balance is optional for callers that only
    # write the ledger (and the sweeper retries whatever this misses).
    from billing import live_sync

    transaction.on_commit(lambda: live_sync.apply_soon(entry.pk))
    return entry


@dataclass(frozen=True)
class UsageDebit:
    """One tenant's debit for a batch of usage records."""

    tenant_id: int
    amount_nanos: int  # positive: what is taken
    request_count: int
    # Set on a lone debit not yet live (see billing.live.applied_key).
    request_id: str = ""


def locked_balances(tenant_ids: list[int]) -> dict[int, int]:
    """Lock these tenants' balance rows, creating any missing, and read them.

    One statement for the lot, locked in tenant order: two workers debiting
    overlapping tenants take the locks in the same order and never deadlock.
    Call inside the transaction that then posts to them."""
    ids = sorted(set(tenant_ids))

    def read() -> dict[int, int]:
        rows = Balance.objects.select_for_update().filter(tenant_id__in=ids).order_by("tenant_id")
        return dict(rows.values_list("tenant_id", "balance_nanos"))

    balances = read()
    if len(balances) < len(ids):
        missing = [Balance(tenant_id=t) for t in ids if t not in balances]
        Balance.objects.bulk_create(missing, ignore_conflicts=True)
        balances = read()
    return balances


def post_usage_debits(debits: list[UsageDebit], *, live_applied: bool) -> None:
    """Write a batch's usage debits, one entry per tenant, and move their
    balances: the same as ``post`` for each, in three statements for all.

    The caller holds the balance rows (``locked_balances``) and has cut each
    debit to what the balance holds, so none overdraws.
    """
    debits = [d for d in debits if d.amount_nanos]
    if not debits:
        return
    entries = LedgerEntry.objects.bulk_create(
        LedgerEntry(
            tenant_id=d.tenant_id,
            kind=LedgerEntry.Kind.USAGE,
            amount_nanos=-d.amount_nanos,
            reason=f"{d.request_count} request(s)",
            live_applied=live_applied,
            request_count=d.request_count,
            request_id=d.request_id,
        )
        for d in debits
    )
    with connection.cursor() as cursor:
        # One statement for every tenant (a CASE of Django's costs ~50 µs a
        # tenant to compile).
        cursor.execute(
            "UPDATE billing_balance AS b SET balance_nanos = b.balance_nanos - d.amount "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS d (tenant_id, amount) "
            "WHERE b.tenant_id = d.tenant_id",
            [[d.tenant_id for d in debits], [d.amount_nanos for d in debits]],
        )
    if not live_applied:
        from billing import live_sync  # see post

        for entry in entries:
            transaction.on_commit(lambda pk=entry.pk: live_sync.apply_soon(pk))


def top_up(*, tenant: Tenant | int, amount_nanos: int, reason: str = "", created_by=None):
    if amount_nanos <= 0:
        raise ValueError("a top-up must be positive")
    return post(
        tenant=tenant,
        kind=LedgerEntry.Kind.TOPUP,
        amount_nanos=amount_nanos,
        reason=reason,
        created_by=created_by,
    )


def adjust(*, tenant: Tenant | int, amount_nanos: int, reason: str, created_by=None):
    """A correction by an operator, either way; the reason is required."""
    if not reason.strip():
        raise ValueError("an adjustment needs a reason")
    return post(
        tenant=tenant,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount_nanos=amount_nanos,
        reason=reason,
        created_by=created_by,
    )


def refund(*, tenant: Tenant | int, amount_nanos: int, reason: str, created_by=None):
    if amount_nanos <= 0:
        raise ValueError("a refund must be positive")
    return post(
        tenant=tenant,
        kind=LedgerEntry.Kind.REFUND,
        amount_nanos=amount_nanos,
        reason=reason,
        created_by=created_by,
    )


def balance_nanos(tenant: Tenant | int) -> int:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    row = Balance.objects.filter(tenant_id=tenant_id).values_list("balance_nanos", flat=True)
    return row.first() or 0


def ledger_sum_nanos(tenant: Tenant | int) -> int:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    total = LedgerEntry.objects.filter(tenant_id=tenant_id).aggregate(s=Sum("amount_nanos"))["s"]
    return total or 0
