"""Redemption codes (兑换码): stored as keyed digests only, redeemed exactly once,
into the ledger and the live balance the way a top-up is, and never when
voided, expired, or meant for another tenant."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from accounts.models import AuditEvent
from billing import ledger, live_sync, redemption
from billing.models import LedgerEntry, RedemptionBatch, RedemptionCode
from billing.reconcile import reconcile
from billing.redemption import RedemptionRefused
from relay.operations import redemption as operations
from relay.operations.actions import ActionRefused
from tests.helpers import STARTING_BALANCE_NANOS, wait_until

VALUE = 5 * 10**9


def make(count: int = 1, **fields) -> list[str]:
    return operations.create_batch(actor=None, count=count, value_nanos=VALUE, **fields).codes


def refusal(**kwargs) -> RedemptionRefused:
    with pytest.raises(RedemptionRefused) as caught:
        redemption.redeem(**kwargs)
    return caught.value


# --- the store -----------------------------------------------------------------------


@pytest.mark.django_db
def test_codes_are_stored_only_as_keyed_digests(tenant):
    codes = make(3)
    assert len(set(codes)) == 3
    assert all(len(code) == 23 and code.count("-") == 3 for code in codes)
    dumped = "".join(
        str(value)
        for row in RedemptionCode.objects.values_list("digest", "hint", "batch__name")
        for value in row
    )
    for code in codes:
        raw = code.replace("-", "")
        assert raw not in dumped and code not in dumped
        # Not a plain hash either: the digest needs the server's secret key.
        assert redemption.digest(raw, "another-secret-key") not in dumped
    assert {c.hint for c in RedemptionCode.objects.all()} == {code[-4:] for code in codes}


@pytest.mark.django_db
def test_a_code_is_read_as_people_type_it(tenant, owner):
    [code] = make()
    typed = " " + code.lower().replace("-", " ").replace("0", "o").replace("1", "l") + " "
    redemption.redeem(text=typed, tenant=tenant, user=owner)
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + VALUE


@pytest.mark.django_db
def test_codes_survive_a_rotated_secret_key(tenant, owner, settings):
    [code] = make()
    old = settings.SECRET_KEY
    with override_settings(
        SECRET_KEY="a-brand-new-secret-key-0123456789", SECRET_KEY_FALLBACKS=[old]
    ):
        redemption.redeem(text=code, tenant=tenant, user=owner)
    assert RedemptionCode.objects.get().status == RedemptionCode.Status.REDEEMED


@pytest.mark.django_db
def test_a_batch_is_refused_with_reasons(tenant):
    cases = [
        ({"count": 0, "value_nanos": VALUE}, "count"),
        ({"count": 1001, "value_nanos": VALUE}, "count"),
        ({"count": 1, "value_nanos": 0}, "value"),
        (
            {"count": 1, "value_nanos": VALUE, "expires": timezone.now() - dt.timedelta(minutes=1)},
            "expires",
        ),
    ]
    for fields, field in cases:
        with pytest.raises(ActionRefused) as caught:
            operations.create_batch(actor=None, **fields)
        assert caught.value.field == field
    assert not RedemptionCode.objects.exists()


def test_the_made_batch_never_shows_its_codes_in_a_log_line(db):
    made = operations.create_batch(actor=None, count=2, value_nanos=VALUE)
    assert made.codes[0] not in repr(made) and "2 hidden" in repr(made)


# --- redeeming -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_code_credits_its_tenant_once_as_a_ledger_entry_of_its_own(tenant, owner):
    [code] = make(name="launch")
    redeemed = redemption.redeem(text=code, tenant=tenant, user=owner)
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.REDEMPTION)
    assert (entry.tenant, entry.amount_nanos, entry.created_by) == (tenant, VALUE, owner)
    assert redeemed.ledger_entry == entry and redeemed.redeemed_tenant == tenant
    assert redeemed.redeemed_by == owner and redeemed.redeemed is not None
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + VALUE
    [event] = AuditEvent.objects.filter(action="code.redeemed")
    assert (event.tenant, event.actor, event.target) == (tenant, owner, f"…{code[-4:]}")
    assert code not in str(event.detail)

    again = refusal(text=code, tenant=tenant, user=owner)
    assert again.reason == "redeemed" and "already" in again.message
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + VALUE


@pytest.mark.django_db
def test_voided_expired_unknown_and_other_tenants_codes_credit_nothing(
    tenant, owner, outsider_tenant
):
    [voided] = make()
    operations.void_code(actor=None, code=RedemptionCode.objects.get())
    [expiring] = make(expires=timezone.now() + dt.timedelta(days=1))
    # A day later: the batch's expiry has passed.
    RedemptionBatch.objects.filter(codes__hint=expiring[-4:]).update(
        expires=timezone.now() - dt.timedelta(seconds=1)
    )
    [theirs] = make(tenant=outsider_tenant)
    reasons = {}
    for name, text in [
        ("voided", voided),
        ("expired", expiring),
        ("other_tenant", theirs),
        ("unknown", "ABCDE-FGHJK-MNPQR-STVWX"),
        ("malformed", "free money"),
    ]:
        reasons[name] = refusal(text=text, tenant=tenant, user=owner)
    assert {name: r.reason for name, r in reasons.items()} == {n: n for n in reasons}
    assert "voided" in reasons["voided"].message and "expired" in reasons["expired"].message
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDEMPTION).exists()
    assert not AuditEvent.objects.filter(action="code.redeemed").exists()


@pytest.mark.django_db
def test_voiding_leaves_redeemed_codes_alone(tenant, owner):
    first, _second, _third = make(3)
    redemption.redeem(text=first, tenant=tenant, user=owner)
    batch = RedemptionCode.objects.first().batch
    assert operations.void_batch(actor=owner, batch=batch) == 2
    states = sorted(RedemptionCode.objects.values_list("status", flat=True))
    assert states == ["redeemed", "voided", "voided"]
    assert operations.void_batch(actor=owner, batch=batch) == 0
    assert AuditEvent.objects.filter(action="codes.voided").count() == 1


# --- exactly once, from many sessions at once ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_sessions_redeeming_one_code_at_once_credit_it_once(tenant, owner):
    [code] = make()
    live_sync.load_tenant(tenant.pk)
    wait_until(lambda: not LedgerEntry.objects.filter(live_applied=False).exists())
    start = threading.Barrier(50)
    results: list[object] = []
    lock = threading.Lock()

    def attempt():
        try:
            start.wait()
            try:
                outcome: object = redemption.redeem(text=code, tenant=tenant, user=owner)
            except RedemptionRefused as refused:
                outcome = refused
            with lock:
                results.append(outcome)
        finally:
            connection.close()  # each thread had a database connection of its own

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    credited = [r for r in results if isinstance(r, RedemptionCode)]
    refused = [r for r in results if isinstance(r, RedemptionRefused)]
    assert (len(credited), len(refused)) == (1, 49)
    assert {r.reason for r in refused} == {"redeemed"}
    assert all(r.message == "This code has been redeemed already." for r in refused)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REDEMPTION).count() == 1
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + VALUE
    wait_until(lambda: live_sync.live_balance(tenant.pk) == (STARTING_BALANCE_NANOS + VALUE, 0))
    report = reconcile()
    assert report.healthy, report
    connections.close_all()
