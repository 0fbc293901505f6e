"""The operator console under /operator/: staff only, every change audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, reverse

from accounts import keys as key_secrets
from accounts.models import ApiKey, AuditEvent, Group, GroupModel, Membership, Tenant
from billing import ledger
from billing.models import BasePrice, ChannelDaily, DailyUsage, LedgerEntry
from console import formatting
from console.operator.urls import urlpatterns as operator_routes
from relay.models import Channel
from tests.conftest import SMALL, STARTING_BALANCE_NANOS, make_channel

pytestmark = pytest.mark.django_db

CREDENTIAL = "sk-upstream-TOP-SECRET-credential-7f3a9c"
LARGE = "text-embedding-3-large"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", password="pw-sam-123", is_staff=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def group_post(name: str, rows: list[tuple[str, str]], **fields) -> dict:
    """A group form submission with its model rows (model, price in units)."""
    data = {
        "name": name, "description": "", "price_ratio": "1", "limit_rpm": "",
        "limit_tpm": "", "limit_concurrency": "",
        "models-TOTAL_FORMS": str(len(rows)), "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
    }
    for index, (model, price) in enumerate(rows):
        data[f"models-{index}-model"] = model
        data[f"models-{index}-price"] = price
    data.update(fields)
    return data


def channel_post(name: str, base_url: str, *, credential: str = "", groups=(),
                 rows: list[tuple[str, str]] = ((SMALL, ""),), **fields) -> dict:
    data = {
        "name": name, "kind": "openai", "base_url": base_url, "credential": credential,
        "priority": "0", "weight": "1", "enabled": "on", "groups": [g.pk for g in groups],
        "models-TOTAL_FORMS": str(len(rows)), "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
    }
    for index, (model, upstream) in enumerate(rows):
        data[f"models-{index}-model"] = model
        data[f"models-{index}-upstream_model"] = upstream
    data.update(fields)
    return data


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
        12_500_000_000, "wire 2024-11", staff,
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
        LedgerEntry.objects.filter(kind="adjustment").order_by("pk").values_list(
            "amount_nanos", "reason"
        )
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
        "tenant.suspended", "tenant.reactivated",
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


# --- Groups and prices ---------------------------------------------------------


def test_staff_creates_a_group_with_prices(staff_client, group):
    response = staff_client.post(
        reverse("operator:group_create"),
        group_post("premium", [(SMALL, "0.05"), (LARGE, "")], price_ratio="1.5"),
    )
    premium = Group.objects.get(name="premium")
    assert response.status_code == 302
    prices = dict(premium.models.values_list("model", "price_per_mtok_nanos"))
    assert prices == {SMALL: 50_000_000, LARGE: None}
    [event] = events("group.created")
    assert event.detail["models"] == {SMALL: 50_000_000, LARGE: None}
    page = staff_client.get(reverse("operator:group", args=[premium.pk])).content.decode()
    # The large model costs its base price (0.13) times the ratio (1.5).
    assert formatting.money(195_000_000) in page and formatting.money(50_000_000) in page


def test_a_model_without_any_price_is_refused(staff_client, group):
    response = staff_client.post(
        reverse("operator:group_create"), group_post("odd", [("custom-embedder", "")])
    )
    assert response.status_code == 200
    assert "custom-embedder: no price" in response.content.decode()
    assert not Group.objects.filter(name="odd").exists()


def test_editing_a_group_reprices_removes_models_and_picks_channels(staff_client, group, channel):
    data = group_post("default", [(SMALL, "0.03")], price_ratio="2")
    data["channels"] = [channel.pk]
    response = staff_client.post(reverse("operator:group", args=[group.pk]), data)
    assert response.status_code == 302
    group.refresh_from_db()
    assert str(group.price_ratio) == "2.000000"
    assert list(group.models.values_list("model", "price_per_mtok_nanos")) == [(SMALL, 30_000_000)]
    assert list(group.channels.all()) == [channel]
    [event] = events("group.updated")
    assert set(event.detail["changed"]) == {"price_ratio", "models"}


def test_base_prices_are_edited_and_audited(staff_client, group):
    staff_client.post(reverse("operator:prices"), {"model": "bge-m3", "price": "0.01"})
    staff_client.post(reverse("operator:prices"), {"model": SMALL, "price": "0.025"})
    assert BasePrice.objects.get(model="bge-m3").price_per_mtok_nanos == 10_000_000
    assert BasePrice.objects.get(model=SMALL).price_per_mtok_nanos == 25_000_000
    assert [e.target for e in events("price.set")] == ["bge-m3", SMALL]
    # The default group prices SMALL from the base list: removing it is refused.
    small = BasePrice.objects.get(model=SMALL)
    response = staff_client.post(reverse("operator:price_delete", args=[small.pk]), follow=True)
    assert "price text-embedding-3-small from this base price" in response.content.decode()
    assert BasePrice.objects.filter(model=SMALL).exists()


# --- Channels --------------------------------------------------------------------


def test_a_channel_credential_is_stored_but_never_rendered(staff_client, group, fake_upstream):
    response = staff_client.post(
        reverse("operator:channel_create"),
        channel_post("backup", fake_upstream.base_url(), credential=CREDENTIAL, groups=[group],
                     rows=[(SMALL, ""), (LARGE, "large-v3")]),
    )
    channel = Channel.objects.get(name="backup")
    assert response.status_code == 302
    assert channel.credential == CREDENTIAL
    assert dict(channel.models.values_list("model", "upstream_model")) == {
        SMALL: "", LARGE: "large-v3",
    }
    # Blank on edit keeps it; every page an operator can open leaves it out.
    staff_client.post(
        reverse("operator:channel", args=[channel.pk]),
        channel_post("backup", fake_upstream.base_url(), groups=[group], priority="5"),
    )
    channel.refresh_from_db()
    assert channel.credential == CREDENTIAL and channel.priority == 5
    pages = [staff_client.get(url) for url in operator_urls(staff_client)]
    pages.append(staff_client.post(reverse("operator:channel_test", args=[channel.pk]),
                                   {"model": SMALL}))
    pages.append(staff_client.post(reverse("operator:channel", args=[channel.pk]),
                                   channel_post("backup", "not a url", credential=CREDENTIAL)))
    for page in pages:
        assert page.status_code in (200, 302, 405), page.request["PATH_INFO"]
        assert CREDENTIAL not in page.content.decode(), page.request["PATH_INFO"]
    assert sum(page.status_code == 200 for page in pages) >= 17
    for event in AuditEvent.objects.all():
        assert CREDENTIAL not in str(event.detail) + event.target
    assert [e.action for e in AuditEvent.objects.filter(target="backup").order_by("pk")] == [
        "channel.created", "channel.updated",
    ]


def test_a_new_credential_replaces_the_old_one(staff_client, channel, group):
    staff_client.post(
        reverse("operator:channel", args=[channel.pk]),
        channel_post("main", channel.base_url, credential="sk-replacement-0002", groups=[group],
                     rows=[(model, "") for model in (SMALL, LARGE, "text-embedding-ada-002")]),
    )
    channel.refresh_from_db()
    assert channel.credential == "sk-replacement-0002"
    [event] = events("channel.updated")
    assert event.detail["changed"] == ["credential"]


def test_enabling_and_disabling_a_channel_is_audited(staff_client, channel):
    staff_client.post(reverse("operator:channel_toggle", args=[channel.pk]), {"enabled": "0"})
    channel.refresh_from_db()
    assert not channel.enabled
    staff_client.post(reverse("operator:channel_toggle", args=[channel.pk]), {"enabled": "1"})
    channel.refresh_from_db()
    assert channel.enabled
    assert [e.action for e in AuditEvent.objects.order_by("pk")] == [
        "channel.disabled", "channel.enabled",
    ]


def test_the_channel_test_shows_success_and_latency(staff_client, channel):
    response = staff_client.post(
        reverse("operator:channel_test", args=[channel.pk]), {"model": SMALL}
    )
    page = response.content.decode()
    assert "Success" in page
    assert re.search(r'id="latency">\d+ ms<', page)
    assert "<dd>1536</dd>" in page  # dimensions
    assert "prompt_tokens 10, total_tokens 10" in page


def test_the_channel_test_shows_the_upstream_error(staff_client, group, fake_upstream):
    broken = make_channel(group, fake_upstream.base_url("status=503"), name="broken")
    response = staff_client.post(
        reverse("operator:channel_test", args=[broken.pk]), {"model": SMALL}
    )
    page = response.content.decode()
    assert "Failed" in page and "Upstream status 503" in page
    assert re.search(r'id="latency">\d+ ms<', page)


def test_the_channel_test_of_an_unreachable_upstream_says_so(staff_client, group):
    dead = make_channel(group, "http://127.0.0.1:9/v1", name="dead")
    response = staff_client.post(reverse("operator:channel_test", args=[dead.pk]), {"model": SMALL})
    assert "Connection error" in response.content.decode()


def test_the_channel_test_obeys_the_egress_guard(staff_client, group):
    # Saved past the form's validation, as an old row might be.
    metadata = make_channel(group, "http://169.254.169.254/v1", name="metadata")
    response = staff_client.post(
        reverse("operator:channel_test", args=[metadata.pk]), {"model": SMALL}
    )
    assert "Refused by the egress guard" in response.content.decode()
    refused = staff_client.post(
        reverse("operator:channel_create"),
        channel_post("inside", "http://169.254.169.254/latest", groups=[group]),
    )
    assert refused.status_code == 200 and "not allowed" in refused.content.decode()
    assert not Channel.objects.filter(name="inside").exists()


def test_channels_show_their_recent_error_rate(staff_client, tenant, group, channel):
    today = dt.datetime.now(dt.UTC).date()
    ChannelDaily.objects.create(day=today, channel_id=channel.pk, attempts=8, failures=2)
    ChannelDaily.objects.create(
        day=today - dt.timedelta(days=5), channel_id=channel.pk, attempts=100, failures=100
    )
    page = staff_client.get(reverse("operator:channels")).content.decode()
    assert "25.00%" in page  # 2 of 8; the old day is outside the window


class _FormValues(HTMLParser):
    """What a browser would submit from the page's main form (``class="card stacked"``)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._in_form = False
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and "stacked" in (attrs.get("class") or ""):
            self._in_form = True
        if not self._in_form or not attrs.get("name") and tag != "option":
            return
        if tag == "input" and attrs.get("type") not in ("submit", "button"):
            checkable = attrs.get("type") in ("checkbox", "radio")
            if checkable and "checked" not in attrs:
                return
            value = attrs.get("value", "on" if checkable else "")
            self.data.setdefault(attrs["name"], []).append(value or "")
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option" and self._select and "selected" in attrs:
            self.data.setdefault(self._select, []).append(attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None


def resubmit(client, url: str):
    scraper = _FormValues()
    scraper.feed(client.get(url).content.decode())
    return client.post(url, scraper.data)


def test_saving_an_edit_page_unchanged_changes_nothing(staff_client, tenant, group, channel):
    ChannelModel = channel.models.model
    ChannelModel.objects.filter(channel=channel, model=LARGE).update(upstream_model="large-v3")
    GroupModel.objects.filter(group=group, model=SMALL).update(price_per_mtok_nanos=25_000_000)
    before = (
        list(channel.models.order_by("model").values_list("model", "upstream_model")),
        list(group.models.order_by("model").values_list("model", "price_per_mtok_nanos")),
        channel.credential,
    )
    for url in (
        reverse("operator:channel", args=[channel.pk]),
        reverse("operator:group", args=[group.pk]),
        reverse("operator:tenant_edit", args=[tenant.pk]),
    ):
        assert resubmit(staff_client, url).status_code == 302, url
    channel.refresh_from_db()
    after = (
        list(channel.models.order_by("model").values_list("model", "upstream_model")),
        list(group.models.order_by("model").values_list("model", "price_per_mtok_nanos")),
        channel.credential,
    )
    assert after == before
    assert list(AuditEvent.objects.values_list("action", "detail")) == []


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


# --- Reports -------------------------------------------------------------------------


class _ReportTables(HTMLParser):
    """The rows of each ``<table class="report">``: breakdown -> list of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = self._row = self._cell = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "report" in (attrs.get("class") or ""):
            self._table = self.tables.setdefault(attrs["data-breakdown"], [])
        elif tag == "tbody" and self._table is not None:
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture
def rollups(tenant, outsider_tenant, group, channel):
    """Rollup rows across two tenants, two models, two channels and five days."""
    day = dt.date(2025, 3, 10)
    acme_key, _ = ApiKey.issue(tenant=tenant, group=group, name="acme-ci")
    globex_key, _ = ApiKey.issue(tenant=outsider_tenant, group=group, name="globex-ci")
    other = make_channel(group, channel.base_url, name="other")
    rows = []
    for offset in range(5):  # days 9..13: 9 and 13 fall outside the 10..12 range
        for key, model, channel_id, n in (
            (acme_key, SMALL, channel.pk, 1),
            (acme_key, LARGE, other.pk, 2),
            (globex_key, SMALL, channel.pk, 3),
            (globex_key, SMALL, None, 4),
        ):
            rows.append(DailyUsage.objects.create(
                day=day + dt.timedelta(days=offset - 1), tenant=key.tenant, api_key=key,
                model=model, channel_id=channel_id, requests=10 * n + offset,
                failed=n if channel_id is None else offset % 2, tokens=1000 * n + offset,
                cost_nanos=123_456_789 * n + offset,
            ))
    return rows


def test_report_totals_equal_the_sum_of_the_rollups_they_cover(staff_client, rollups):
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(
            reverse("operator:reports"), {"start": "2025-03-10", "end": "2025-03-12"}
        )
    assert not [q for q in queries if "billing_usagerecord" in q["sql"]]
    covered = [r for r in rollups if dt.date(2025, 3, 10) <= r.day <= dt.date(2025, 3, 12)]
    assert len(covered) == 12
    report = response.context["report"]
    assert report.total.cost_nanos == sum(r.cost_nanos for r in covered)
    assert report.total.tokens == sum(r.tokens for r in covered)
    assert report.total.requests == sum(r.requests for r in covered)
    assert report.total.failed == sum(r.failed for r in covered)
    for rows in (report.by_day, report.by_tenant, report.by_model, report.by_channel):
        assert sum(row.cost_nanos for row in rows) == report.total.cost_nanos
        assert sum(row.requests for row in rows) == report.total.requests
    assert [row.label for row in report.by_day] == ["2025-03-10", "2025-03-11", "2025-03-12"]
    assert {row.label for row in report.by_tenant} == {"acme", "globex"}
    assert {row.label for row in report.by_channel} == {
        "main", "other", "(no channel: every channel failed)",
    }
    page = response.content.decode()
    assert formatting.money(report.total.cost_nanos) in page
    assert page.count("<svg") == 2  # daily spend, spend by model


def test_the_report_csv_has_the_rows_of_the_page(staff_client, rollups):
    params = {"start": "2025-03-10", "end": "2025-03-12"}
    page = staff_client.get(reverse("operator:reports"), params).content.decode()
    export = staff_client.get(reverse("operator:reports"), {**params, "export": "csv"})
    assert export["Content-Type"].startswith("text/csv")
    csv_rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    tables = _ReportTables()
    tables.feed(page)
    page_rows = [
        (breakdown, cells[0], cells[1], cells[2], cells[4], cells[5])
        for breakdown, rows in tables.tables.items()
        for cells in rows
    ]
    expected = [
        (row["breakdown"], row["name"], formatting.thousands(int(row["requests"])),
         formatting.thousands(int(row["failed"])), formatting.thousands(int(row["tokens"])),
         formatting.money(int(row["spend_nanos"])))
        for row in csv_rows if row["breakdown"] != "total"
    ]
    assert page_rows == expected
    assert len(page_rows) == 3 + 2 + 2 + 3 + 2
    [total] = [row for row in csv_rows if row["breakdown"] == "total"]
    assert int(total["spend_nanos"]) == sum(
        r.cost_nanos for r in rollups if dt.date(2025, 3, 10) <= r.day <= dt.date(2025, 3, 12)
    )


def test_a_report_filtered_by_tenant_covers_only_its_rollups(staff_client, rollups, tenant):
    response = staff_client.get(
        reverse("operator:reports"),
        {"start": "2025-03-09", "end": "2025-03-13", "tenant": "acme"},
    )
    report = response.context["report"]
    assert report.total.cost_nanos == sum(r.cost_nanos for r in rollups if r.tenant == tenant)
    assert [row.label for row in report.by_tenant] == ["acme"]


def test_a_backwards_range_is_a_form_error(staff_client):
    response = staff_client.get(
        reverse("operator:reports"), {"start": "2025-03-12", "end": "2025-03-10"}
    )
    assert response.status_code == 200
    assert "The range ends before it starts." in response.content.decode()
    assert response.context["report"] is None


# --- The audit log ---------------------------------------------------------------------


def test_the_audit_log_lists_changes_and_filters_them(staff_client, tenant, outsider_tenant):
    staff_client.post(reverse("operator:tenant_status", args=[tenant.pk]), {"status": "suspended"})
    staff_client.post(
        reverse("operator:tenant_status", args=[outsider_tenant.pk]), {"status": "suspended"}
    )
    staff_client.post(reverse("operator:tenant_status", args=[tenant.pk]), {"status": "active"})
    everything = staff_client.get(reverse("operator:audit")).content.decode()
    assert everything.count("tenant.suspended</code>") == 2
    assert "sam" in everything
    only_acme = staff_client.get(reverse("operator:audit"), {"tenant": "acme"}).content.decode()
    assert only_acme.count("<code>tenant.") == 2 and ">globex</a>" not in only_acme
    suspensions = staff_client.get(
        reverse("operator:audit"), {"action": "tenant.suspended"}
    ).content.decode()
    assert suspensions.count("<code>tenant.suspended</code>") == 2
    assert "tenant.reactivated</code>" not in suspensions


# --- Who may see any of it -------------------------------------------------------------


def operator_urls(client) -> list[str]:
    """Every operator route, with ids of objects that exist."""
    tenant = Tenant.objects.order_by("pk").first() or Tenant.objects.create(slug="t", name="T")
    group = Group.objects.order_by("pk").first() or Group.objects.create(name="g")
    if not GroupModel.objects.exists():
        GroupModel.objects.create(group=group, model=SMALL, price_per_mtok_nanos=1)
    channel = Channel.objects.order_by("pk").first() or make_channel(group, "http://127.0.0.1:9/v1")
    price, _ = BasePrice.objects.get_or_create(model=SMALL, defaults={"price_per_mtok_nanos": 1})
    key = ApiKey.objects.filter(tenant=tenant).first() or ApiKey.issue(
        tenant=tenant, group=group, name="walk"
    )[0]
    ids = {"tenant": tenant.pk, "group": group.pk, "channel": channel.pk, "price": price.pk}
    urls = []
    for route in operator_routes:
        assert isinstance(route, URLPattern)
        kwargs = {}
        if "pk" in route.pattern.converters:
            kwargs["pk"] = next(v for k, v in ids.items() if route.name.startswith(k))
        if "key_pk" in route.pattern.converters:
            kwargs["key_pk"] = key.pk
        urls.append(reverse(f"operator:{route.name}", kwargs=kwargs))
    return urls


POST_ONLY = ("/status/", "/toggle/", "/revoke/", "/delete/")


def test_every_operator_page_opens_for_staff(staff_client, tenant, channel):
    for url in operator_urls(staff_client):
        response = staff_client.get(url)
        if url.endswith(POST_ONLY):
            assert response.status_code == 405, url
        else:
            assert response.status_code in (200, 302), url


def test_a_tenant_owner_gets_403_on_every_operator_url(client, owner, channel):
    client.force_login(owner)
    urls = operator_urls(client)
    assert len(urls) == len(operator_routes) > 15
    for url in urls:
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"status": "suspended", "enabled": "0"}).status_code == 403, url
    assert not AuditEvent.objects.exists()
    assert Tenant.objects.get(slug="acme").status == "active"


def test_signed_out_visitors_are_sent_to_sign_in(client, tenant, channel):
    for url in operator_urls(client):
        for response in (client.get(url), client.post(url)):
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login")), url



def test_an_operator_gives_a_tenant_its_first_owner_who_can_then_sign_in(
    staff_client, tenant, client
):
    url = reverse("operator:tenant_members", args=[tenant.pk])
    response = staff_client.post(
        url, {"username": "fiona", "role": "owner", "password": "a-long-password-1"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(tenant=tenant, user__username="fiona")
    assert membership.role == Membership.Role.OWNER
    assert AuditEvent.objects.filter(action="member.added", target="fiona").exists()
    page = staff_client.get(reverse("operator:tenant", args=[tenant.pk])).content.decode()
    assert "fiona" in page and "a-long-password-1" not in page
    assert client.login(username="fiona", password="a-long-password-1")
    assert client.get("/console/").status_code == 200


def test_a_new_members_password_is_kept_as_typed_spaces_and_all(staff_client, tenant, client):
    url = reverse("operator:tenant_members", args=[tenant.pk])
    staff_client.post(url, {"username": "gail", "role": "owner", "password": " padded-password "})
    assert client.login(username="gail", password=" padded-password ")


def test_a_new_member_without_a_proper_password_is_refused(staff_client, tenant):
    url = reverse("operator:tenant_members", args=[tenant.pk])
    staff_client.post(url, {"username": "gus", "role": "member", "password": "short"})
    assert not Membership.objects.filter(tenant=tenant, user__username="gus").exists()
