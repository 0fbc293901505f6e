"""The operator console's reports, built from the daily rollups (totals, CSV, a
tenant's share, a backwards range), and the audit log with its filters.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import ApiKey
from billing.models import DailyUsage
from console import formatting
from tests.helpers import LARGE, SMALL, make_channel

pytestmark = pytest.mark.django_db


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
            rows.append(
                DailyUsage.objects.create(
                    day=day + dt.timedelta(days=offset - 1),
                    tenant=key.tenant,
                    api_key=key,
                    model=model,
                    channel_id=channel_id,
                    requests=10 * n + offset,
                    failed=n if channel_id is None else offset % 2,
                    tokens=1000 * n + offset,
                    cost_nanos=123_456_789 * n + offset,
                )
            )
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
        "main",
        "other",
        "(no channel: every channel failed)",
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
        (
            row["breakdown"],
            row["name"],
            formatting.thousands(int(row["requests"])),
            formatting.thousands(int(row["failed"])),
            formatting.thousands(int(row["tokens"])),
            formatting.money(int(row["spend_nanos"])),
        )
        for row in csv_rows
        if row["breakdown"] != "total"
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
