"""Moving money in PostgreSQL: every change to a balance is a ledger entry,
written in the same transaction as the balance row it moves."""

from __future__ import annotations

import logging

from django.db import transaction
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
    live_applied: bool = False,
    request_count: int = 0,
    request_id: str = "",
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
            live_applied=live_applied,
            request_count=request_count,
            request_id=request_id,
        )
        Balance.objects.filter(tenant_id=tenant_id).update(
            balance_nanos=F("balance_nanos") + amount_nanos
        )
    if not live_applied:
        # Imported here: the live balance is optional for callers that only
        # write the ledger (and the sweeper retries whatever this misses).
        from billing import live_sync

        transaction.on_commit(lambda: live_sync.apply_soon(entry.pk))
    return entry


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
