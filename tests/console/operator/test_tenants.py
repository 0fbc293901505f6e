"""The operator console's tenants (/operator/tenants/): created with their groups,
topped up and adjusted through the ledger, suspended and edited; keys issued in
bulk and revoked. Every change audited.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from accounts import keys as key_secrets
from accounts.models import ApiKey, AuditEvent, Group, Tenant
from billing import ledger
from billing.models import LedgerEntry
from console import formatting
from tests.console.operator.helpers import events
from tests.helpers import STARTING_BALANCE_NANOS

pytestmark = pytest.mark.django_db


# --- Tenants and money ---------------------------------------------------------


def test_staff_creates_a_tenant_with_the_groups_it_may_issue_keys_in(staff_client, group):
    response = staff_client.post(
        reverse("operator:tenant_create"),
        {"name": "Initech", "slug": "initech", "groups": [group.pk], "limit_rpm": "600"},
    )
    tenant = Tenant.objects.get(slug="initech")
    assert response.status_code == 302
    assert response["Location"] == reverse("operator:tenant", args=[tenant.pk])
    assert list(tenant.groups.all()) == [group]
    assert tenant.limit_rpm == 600
    [event] = events("tenant.created")
    assert event.target == "initech" and event.tenant == tenant
    page = staff_client.get(reverse("operator:tenants")).content.decode()
    assert "initech" in page and "default" in page


def test_a_duplicate_slug_is_a_form_error(staff_client, tenant):
    response = staff_client.post(reverse("operator:tenant_create"), {"name": "X", "slug": "acme"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Tenant.objects.filter(slug="acme").count() == 1


def test_the_tenant_list_shows_balances(staff_client, tenant):
    page = staff_client.get(reverse("operator:tenants")).content.decode()
    assert formatting.money(STARTING_BALANCE_NANOS) in page


def test_a_top_up_writes_a_ledger_entry_and_moves_the_balance(staff_client, staff, tenant):
    response = staff_client.post(
        reverse("operator:tenant_balance", args=[tenant.pk]),
        {"kind": "topup", "amount": "12.5", "reason": "wire 2024-11"},
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.filter(tenant=tenant, kind="topup").latest("pk")
    assert (entry.amount_nanos, entry.reason, entry.created_by) == (
        12_500_000_000,
        "wire 2024-11",
        staff,
    )
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS + 12_500_000_000
    assert ledger.ledger_sum_nanos(tenant) == ledger.balance_nanos(tenant)
    [event] = events("balance.topped_up")
    assert event.actor == staff and event.detail["amount_nanos"] == 12_500_000_000
    page = staff_client.get(reverse("operator:tenant", args=[tenant.pk])).content.decode()
    assert formatting.money(STARTING_BALANCE_NANOS + 12_500_000_000) in page


def test_an_adjustment_needs_a_reason(staff_client, tenant):
    response = staff_client.post(
        reverse("operator:tenant_balance", args=[tenant.pk]),
        {"kind": "adjustment", "amount": "-5", "reason": "  "},
    )
    assert response.status_code == 200
    assert "An adjustment needs a reason." in response.content.decode()
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS


def test_an_adjustment_with_a_reason_moves_the_balance_either_way(staff_client, tenant):
    url = reverse("operator:tenant_balance", args=[tenant.pk])
    staff_client.post(url, {"kind": "adjustment", "amount": "-30", "reason": "duplicate top-up"})
    staff_client.post(url, {"kind": "adjustment", "amount": "0.000000001", "reason": "rounding"})
    amounts = list(
        LedgerEntry.objects.filter(kind="adjustment")
        .order_by("pk")
        .values_list("amount_nanos", "reason")
    )
    assert amounts == [(-30 * 10**9, "duplicate top-up"), (1, "rounding")]
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS - 30 * 10**9 + 1
    assert len(events("balance.adjusted")) == 2


def test_an_adjustment_below_zero_is_refused_with_a_form_error(staff_client, tenant):
    response = staff_client.post(
        reverse("operator:tenant_balance", args=[tenant.pk]),
        {"kind": "adjustment", "amount": "-100.000000001", "reason": "chargeback"},
    )
    assert response.status_code == 200
    assert "That would take the balance below zero" in response.content.decode()
    assert ledger.balance_nanos(tenant) == STARTING_BALANCE_NANOS
    assert not events("balance.adjusted")


def test_a_top_up_must_be_positive_and_no_finer_than_a_nano(staff_client, tenant):
    url = reverse("operator:tenant_balance", args=[tenant.pk])
    for amount, message in (("-1", "more than zero"), ("0.0000000001", "9 decimal places")):
        response = staff_client.post(url, {"kind": "topup", "amount": amount})
        assert message in response.content.decode()
    assert LedgerEntry.objects.filter(tenant=tenant).count() == 1  # the fixture's funds


def test_the_ledger_is_paginated(staff_client, tenant):
    for n in range(60):
        ledger.top_up(tenant=tenant, amount_nanos=n + 1, reason=f"entry {n}")
    first = staff_client.get(reverse("operator:tenant_ledger", args=[tenant.pk]))
    second = staff_client.get(reverse("operator:tenant_ledger", args=[tenant.pk]), {"page": 2})
    assert "Page 1 of 2" in first.content.decode()
    assert "entry 59" in first.content.decode() and "entry 59" not in second.content.decode()
    assert "test funds" in second.content.decode()


def test_suspend_and_reactivate_are_audited(staff_client, tenant):
    url = reverse("operator:tenant_status", args=[tenant.pk])
    staff_client.post(url, {"status": "suspended"})
    tenant.refresh_from_db()
    assert tenant.status == "suspended"
    staff_client.post(url, {"status": "active"})
    tenant.refresh_from_db()
    assert tenant.status == "active"
    assert [e.action for e in AuditEvent.objects.filter(tenant=tenant).order_by("pk")] == [
        "tenant.suspended",
        "tenant.reactivated",
    ]


def test_editing_a_tenant_changes_its_groups(staff_client, tenant, group):
    other = Group.objects.create(name="premium")
    staff_client.post(
        reverse("operator:tenant_edit", args=[tenant.pk]),
        {"name": "Acme Corp", "groups": [group.pk, other.pk], "limit_tpm": "100000"},
    )
    tenant.refresh_from_db()
    assert tenant.name == "Acme Corp" and tenant.limit_tpm == 100_000
    assert set(tenant.groups.all()) == {group, other}
    [event] = events("tenant.updated")
    assert set(event.detail["changed"]) == {"name", "limit_tpm", "groups"}


# --- Keys --------------------------------------------------------------------------


def test_bulk_keys_come_back_once_as_a_csv_whose_digests_are_stored(staff_client, tenant, group):
    response = staff_client.post(
        reverse("operator:tenant_keys_issue", args=[tenant.pk]),
        {"group": group.pk, "count": "25", "name_prefix": "batch"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 25
    assert [row["name"] for row in rows[:2]] == ["batch-0001", "batch-0002"]
    stored = set(ApiKey.objects.filter(tenant=tenant, group=group).values_list("digest", flat=True))
    assert {key_secrets.digest(row["secret"]) for row in rows} == stored
    assert all(row["secret"].startswith(row["prefix"]) for row in rows)
    [event] = events("keys.issued")
    assert event.detail["count"] == 25 and event.tenant == tenant
    # Never shown again, nor written anywhere readable.
    keys_page = staff_client.get(reverse("operator:tenant_keys", args=[tenant.pk])).content.decode()
    for row in rows:
        assert row["secret"] not in keys_page
        assert row["secret"] not in str(event.detail)


@pytest.mark.parametrize("count", ["0", "1001"])
def test_bulk_issue_takes_one_to_a_thousand_keys(staff_client, tenant, group, count):
    response = staff_client.post(
        reverse("operator:tenant_keys_issue", args=[tenant.pk]),
        {"group": group.pk, "count": count, "name_prefix": "batch"},
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert not ApiKey.objects.exists()


def test_a_thousand_keys_are_issued_in_one_go(staff_client, tenant, group):
    response = staff_client.post(
        reverse("operator:tenant_keys_issue", args=[tenant.pk]),
        {"group": group.pk, "count": "1000", "name_prefix": "big"},
    )
    assert len(response.content.decode().splitlines()) == 1001
    assert ApiKey.objects.filter(tenant=tenant).count() == 1000


def test_revoking_a_key_is_audited_and_scoped_to_its_tenant(
    staff_client, tenant, outsider_tenant, group
):
    key, _ = ApiKey.issue(tenant=tenant, group=group, name="ci")
    wrong = staff_client.post(
        reverse("operator:tenant_key_revoke", args=[outsider_tenant.pk, key.pk])
    )
    assert wrong.status_code == 404
    staff_client.post(reverse("operator:tenant_key_revoke", args=[tenant.pk, key.pk]))
    key.refresh_from_db()
    assert key.status == "revoked"
    [event] = events("key.revoked")
    assert event.target == "acme/ci" and event.detail["key"] == key.masked
