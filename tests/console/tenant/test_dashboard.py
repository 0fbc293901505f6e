"""The tenant console's dashboard: its numbers add up the daily rollups."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from billing.models import DailyUsage
from console.formatting import money
from tests.console.tenant.helpers import signed_in, today
from tests.helpers import ADA, LARGE, SMALL

pytestmark = pytest.mark.django_db


# --- dashboard -----------------------------------------------------------------


def test_the_dashboard_adds_up_the_rollups(client, owner, tenant, usage, globex_key):
    acme_key, other = usage["keys"]
    day = today()
    month_start = day.replace(day=1)
    rows = [
        DailyUsage(
            day=day,
            tenant=tenant,
            api_key=acme_key,
            model=SMALL,
            requests=10,
            failed=1,
            tokens=1_000,
            cost_nanos=20_000,
        ),
        DailyUsage(
            day=day,
            tenant=tenant,
            api_key=other,
            model=LARGE,
            requests=3,
            tokens=3_000,
            cost_nanos=390_000,
        ),
        DailyUsage(
            day=month_start,
            tenant=tenant,
            api_key=acme_key,
            model=LARGE,
            channel_id=7,
            requests=5,
            tokens=5_000_000,
            cost_nanos=650_000_000,
        ),
        DailyUsage(
            day=day - dt.timedelta(days=12),
            tenant=tenant,
            api_key=other,
            model=ADA,
            requests=2,
            tokens=200,
            cost_nanos=20_000,
        ),
        DailyUsage(
            day=day - dt.timedelta(days=45),
            tenant=tenant,
            api_key=acme_key,
            model=SMALL,
            requests=99,
            tokens=99,
            cost_nanos=99_999_999,
        ),
        DailyUsage(
            day=day,
            tenant=globex_key.tenant,
            api_key=globex_key,
            model=SMALL,
            requests=50,
            tokens=50,
            cost_nanos=77_777,
        ),
    ]
    DailyUsage.objects.bulk_create(rows)
    mine = [r for r in rows if r.tenant == tenant]
    window = [r for r in mine if r.day >= day - dt.timedelta(days=29)]

    signed_in(client, owner)
    response = client.get(reverse("console:dashboard"))
    context = response.context
    assert context["balance_nanos"] == 100 * 10**9
    assert context["spend_today"]["cost_nanos"] == sum(r.cost_nanos for r in mine if r.day == day)
    assert context["spend_today"]["requests"] == sum(r.requests for r in mine if r.day == day)
    assert context["spend_month"]["cost_nanos"] == sum(
        r.cost_nanos for r in mine if month_start <= r.day <= day
    )
    report = context["report"]
    assert report.total["cost_nanos"] == sum(r.cost_nanos for r in window)
    assert report.total["tokens"] == sum(r.tokens for r in window)
    assert {m.model: m.cost_nanos for m in report.by_model} == {
        model: sum(r.cost_nanos for r in window if r.model == model)
        for model in {r.model for r in window}
    }
    assert [(row["key"], row["cost_nanos"]) for row in context["top_keys"]] == sorted(
        [(k, sum(r.cost_nanos for r in window if r.api_key == k)) for k in (acme_key, other)],
        key=lambda pair: -pair[1],
    )
    html = response.content.decode()
    assert f'id="balance">{money(100 * 10**9)}<' in html
    assert f'id="spend-today">{money(context["spend_today"]["cost_nanos"])}<' in html
    assert html.count('<svg class="chart"') == 2
    assert "77,777" not in html and "0.000077777" not in html  # the other tenant's
