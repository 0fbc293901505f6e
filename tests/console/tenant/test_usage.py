"""The tenant console's usage pages and their CSV: totals of every filtered
record, the CSV holding exactly the filtered rows (streamed under ASGI, formulas
defused), and the default range of 30 days.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from billing.pricing import from_nanos
from console.formatting import money
from console.tenant import csv_export
from tests.console.tenant.helpers import record, signed_in, today
from tests.helpers import LARGE, SMALL

pytestmark = pytest.mark.django_db


# --- usage ---------------------------------------------------------------------


def pages(client: Client, params: dict) -> list[str]:
    request_ids, page = [], 1
    while True:
        response = client.get(reverse("console:usage"), {**params, "page": page})
        request_ids += [r.request_id for r in response.context["page_obj"]]
        if not response.context["page_obj"].has_next():
            return request_ids
        page += 1


def csv_rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_usage_totals_are_those_of_every_filtered_record(client, owner, usage):
    acme_key, _other = usage["keys"]
    since, until = today() - dt.timedelta(days=25), today() - dt.timedelta(days=1)
    params = {
        "key": acme_key.pk,
        "model": "",
        "status": "served",
        "since": since.isoformat(),
        "until": until.isoformat(),
    }
    expected = sorted(
        (
            r
            for r in usage["records"]
            if r.api_key == acme_key
            and r.status == "served"
            and since <= r.created.astimezone(dt.UTC).date() <= until
        ),
        key=lambda r: r.created,
        reverse=True,
    )
    assert len(expected) > 50  # more than one page
    signed_in(client, owner)
    response = client.get(reverse("console:usage"), params)
    assert response.context["totals"] == {
        "count": len(expected),
        "tokens": sum(r.tokens for r in expected),
        "cost_nanos": sum(r.cost_nanos for r in expected),
    }
    html = response.content.decode()
    assert money(sum(r.cost_nanos for r in expected)) in html
    assert len(response.context["page_obj"].object_list) == 50
    assert pages(client, params) == [r.request_id for r in expected]


def test_the_csv_holds_exactly_the_filtered_rows_of_every_page(client, owner, usage):
    signed_in(client, owner)
    params = {
        "model": LARGE,
        "status": "",
        "key": "",
        "since": (today() - dt.timedelta(days=35)).isoformat(),
        "until": "",
    }
    on_pages = pages(client, params)
    assert len(on_pages) > 50
    page = client.get(reverse("console:usage"), params)
    assert page.context["filters"] in page.content.decode().replace("&amp;", "&")

    rows = csv_rows(client.get(reverse("console:usage_csv"), params))
    assert [row["request_id"] for row in rows] == on_pages
    assert list(rows[0]) == list(csv_export.COLUMNS)
    by_id = {r.request_id: r for r in usage["records"]}
    for row in rows:
        r = by_id[row["request_id"]]
        assert row["key"] == r.api_key.masked and "..." in row["key"]
        assert int(row["cost_nanos"]) == r.cost_nanos
        assert Decimal(row["cost"]) == from_nanos(r.cost_nanos)
        assert dt.datetime.fromisoformat(row["created"]) == r.created
    assert all(row["model"] == LARGE for row in rows)


def test_without_filters_the_usage_page_shows_the_last_30_days(client, owner, usage):
    signed_in(client, owner)
    since = today() - dt.timedelta(days=29)
    expected = {
        r.request_id
        for r in usage["records"]
        if r.tenant.slug == "acme" and r.created.astimezone(dt.UTC).date() >= since
    }
    response = client.get(reverse("console:usage"))
    assert response.context["totals"]["count"] == len(expected)
    rows = csv_rows(client.get(reverse("console:usage_csv")))
    assert {row["request_id"] for row in rows} == expected


def test_the_csv_streams_asynchronously_under_asgi(owner, usage):
    client = AsyncClient()
    client.force_login(owner)
    params = {"key": "", "model": SMALL, "status": "failed", "since": "", "until": ""}
    expected = {
        r.request_id
        for r in usage["records"]
        if r.tenant.slug == "acme" and r.model == SMALL and r.status == "failed"
    }

    async def fetch():
        response = await client.get(reverse("console:usage_csv"), params)
        body = b"".join([chunk async for chunk in response.streaming_content])
        return response, body

    response, body = async_to_sync(fetch)()
    assert isinstance(response, StreamingHttpResponse) and response.is_async
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert {row["request_id"] for row in rows} == expected and expected


def test_a_formula_in_end_user_is_defused_in_the_csv(client, owner, acme_key):
    hostile = record(acme_key, created=timezone.now())
    hostile.end_user = '=HYPERLINK("http://evil.example","x")'
    hostile.save()
    signed_in(client, owner)
    [row] = csv_rows(client.get(reverse("console:usage_csv")))
    assert row["end_user"] == "'" + hostile.end_user
