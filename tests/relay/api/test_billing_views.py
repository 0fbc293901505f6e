"""The legacy billing endpoints (relay/api/billing_views.py) over HTTP against the
live relay: the balance left, the spend of a range, and their refusals in
OpenAI's envelope.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import (
    HELLO,
    HELLO_COST,
    SMALL,
    STARTING_BALANCE_NANOS,
    assert_envelope,
    embed,
    eventually,
    hello,
    records,
)

server = pytest.mark.django_db(transaction=True)


# --- the legacy billing endpoints ---------------------------------------------------------


def dollars(nanos: int) -> float:
    return round(nanos / 10**9, 9)


@server
def test_the_subscription_endpoint_reports_the_balance_left(relay, tenant, secret):
    before = relay.get(
        "/v1/dashboard/billing/subscription", headers={"Authorization": f"Bearer {secret}"}
    )
    assert before.status_code == 200, before.text
    assert before.json()["object"] == "billing_subscription"
    assert before.json()["hard_limit_usd"] == 100.0

    assert hello(relay, secret).status_code == 200
    after = relay.get(
        "/v1/dashboard/billing/subscription", headers={"Authorization": f"Bearer {secret}"}
    )

    assert after.json()["hard_limit_usd"] == dollars(STARTING_BALANCE_NANOS - HELLO_COST)
    assert after.json()["hard_limit_usd"] < 100.0


@server
def test_the_usage_endpoint_reports_the_spend_of_the_range_in_cents(
    relay, tenant, secret, celery_worker
):
    inputs = [HELLO, "The quick brown fox jumps over the lazy dog", ["a", "b", "c"] * 50]
    for item in inputs:
        response = embed(relay, secret, {"model": SMALL, "input": item})
        assert response.status_code == 200, response.text
    eventually(lambda: len(records(tenant=tenant)) == 3)
    written = records(tenant=tenant)
    spent = sum(record.cost_nanos for record in written)
    assert spent > 3 * HELLO_COST
    today = dt.datetime.now(dt.UTC).date()
    auth = {"Authorization": f"Bearer {secret}"}

    usage = relay.get(
        "/v1/dashboard/billing/usage",
        headers=auth,
        params={"start_date": str(today), "end_date": str(today + dt.timedelta(days=1))},
    )
    earlier = relay.get(
        "/v1/dashboard/billing/usage",
        headers=auth,
        params={"start_date": str(today - dt.timedelta(days=3)), "end_date": str(today)},
    )

    assert usage.status_code == 200, usage.text
    assert usage.json()["total_usage"] == round(spent / 1e9 * 100, 7)
    assert usage.json()["total_usage"] > 0
    assert earlier.json()["total_usage"] == 0


@server
def test_the_usage_endpoint_refuses_a_bad_date_in_the_envelope(relay, secret):
    response = relay.get(
        "/v1/dashboard/billing/usage",
        headers={"Authorization": f"Bearer {secret}"},
        params={"start_date": "last tuesday"},
    )

    error = assert_envelope(response, 400, "invalid_request_error")
    assert error["param"] == "start_date"
    assert "last tuesday" in error["message"]


@server
@pytest.mark.parametrize(
    "path", ["/v1/dashboard/billing/subscription", "/v1/dashboard/billing/usage"]
)
def test_the_billing_endpoints_need_a_key(relay, path):
    response = relay.get(path)

    assert_envelope(response, 401, "invalid_request_error")
