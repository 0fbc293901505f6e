"""Money on the request path, end to end: a live relay, a real worker, real
PostgreSQL and Redis. A request reserves its cost, spends exactly what it
cost (no more than its key's spending limit allows, nothing when every
upstream failed), and the books (PostgreSQL ledger, live Redis balance)
always agree.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from accounts.models import ApiKey
from billing import live, live_sync, redis_url, streams
from billing.models import LedgerEntry, UsageRecord
from billing.pricing import cost_nanos
from tests.helpers import (
    HELLO_COST,
    ROOT,
    SMALL,
    SMALL_PRICE_NANOS,
    STARTING_BALANCE_NANOS,
    WORKER_TIMEOUT_S,
    assert_envelope,
    balance_row,
    eventually,
    funded_key,
    hello,
    live_now,
    make_channel,
    records,
    wait_until,
)

server = pytest.mark.django_db(transaction=True)


def stream_len() -> int:
    conn = redis_url.client(settings.REDIS_URL)
    return sum(conn.xlen(stream) for stream in streams.all_streams())


def caught_up(tenant) -> None:
    """Wait for the worker: every queued usage event written, and every ledger
    entry flagged as applied to the live balance by its periodic apply task
    (until then reconcile misreads a newly loaded tenant: see
    test_reconcile_finds_no_drift_right_after_a_tenant_is_loaded_live)."""
    wait_until(lambda: stream_len() == 0, timeout_s=WORKER_TIMEOUT_S)
    wait_until(
        lambda: not LedgerEntry.objects.filter(tenant=tenant, live_applied=False).exists(),
        timeout_s=25,
    )


def reconciled() -> str:
    """``manage.py reconcile``'s output; it raises CommandError when unhealthy."""
    out = io.StringIO()
    try:
        call_command("reconcile", stdout=out)
    except CommandError as error:
        raise AssertionError(f"reconcile failed: {error}\n{out.getvalue()}") from error
    return out.getvalue()


# --- a request costs exactly what it cost ------------------------------------------------


@server
def test_a_served_request_lowers_the_balance_by_exactly_its_cost(
    relay, tenant, secret, celery_worker
):
    assert balance_row(tenant) == STARTING_BALANCE_NANOS

    response = hello(relay, secret)

    assert response.status_code == 200, response.text
    # The live balance moves at once; nothing stays held.
    assert live_now(tenant.pk) == (STARTING_BALANCE_NANOS - HELLO_COST, 0)
    # PostgreSQL follows once the worker has written the usage.
    [record] = eventually(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.cost_nanos == HELLO_COST
    eventually(lambda: balance_row(tenant) == STARTING_BALANCE_NANOS - HELLO_COST)
    [debit] = LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE)
    assert debit.amount_nanos == -HELLO_COST
    assert debit.request_count == 1
    caught_up(tenant)
    assert "drift=0 " in reconciled()


@server
def test_a_tenant_without_balance_gets_429_insufficient_quota_and_nothing_is_sent(
    relay, group, fake_upstream, celery_worker
):
    make_channel(group, fake_upstream.base_url("ch=broke"))
    tenant, _api_key, secret = funded_key(group, requests=0, name="broke")
    fake_upstream.reset()

    response = hello(relay, secret)

    error = assert_envelope(response, 429, "insufficient_quota")
    assert error["code"] == "insufficient_quota"
    assert "quota" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert fake_upstream.stats("ch=broke")["requests"] == 0
    assert stream_len() == 0  # no usage event was queued
    time.sleep(1)  # several drain intervals
    assert records(tenant=tenant) == []
    assert not LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE).exists()


# Fired from separate OS processes, each with its threads, all at one instant.
FIRE = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import httpx

url, secret, model, count, start_at = sys.argv[1:6]
count, start_at = int(count), float(start_at)

def one(client):
    response = client.post("/v1/embeddings", json={"model": model, "input": "hello world"},
                           headers={"Authorization": f"Bearer {secret}"})
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {"type": "not json: " + response.text[:200]}
    return [response.status_code, error.get("type"), error.get("code"),
            response.headers.get("x-should-retry"), response.headers.get("x-request-id")]

limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
with httpx.Client(base_url=url, timeout=60, limits=limits) as client, \
        ThreadPoolExecutor(count) as pool:
    time.sleep(max(0.0, start_at - time.time()))
    results = list(pool.map(lambda _: one(client), range(count)))
print(json.dumps(results))
"""


def fire_at_once(url: str, secret: str, *, processes: int, per_process: int) -> list[list]:
    start_at = time.time() + 3  # time enough for every process to start
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FIRE, url, secret, SMALL, str(per_process), str(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        results.extend(json.loads(out))
    return results


@server
def test_concurrent_requests_never_overdraw_a_balance(
    relay_server, group, fake_upstream, celery_worker
):
    affordable = 20
    make_channel(group, fake_upstream.base_url("ch=rush,latency=20"))
    tenant, _api_key, secret = funded_key(group, requests=affordable, name="rush")
    fake_upstream.reset()

    results = fire_at_once(relay_server, secret, processes=4, per_process=5 * affordable // 2)

    assert len(results) == 10 * affordable
    statuses = sorted({status for status, *_ in results})
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert statuses == [200, 429], f"unexpected statuses: {statuses}"
    assert len(served) == affordable
    assert all(r[1:4] == ["insufficient_quota", "insufficient_quota", "false"] for r in refused)
    upstream = fake_upstream.stats("ch=rush,latency=20")
    assert upstream["requests"] == affordable
    assert upstream["peak_in_flight"] > 1  # the requests really did overlap

    caught_up(tenant)
    written = records(tenant=tenant)
    assert len(written) == affordable
    assert {r.status for r in written} == {UsageRecord.Status.SERVED}
    assert {r.request_id for r in written} == {r[4] for r in served}
    assert balance_row(tenant) == 0
    assert live_now(tenant.pk) == (0, 0)
    assert "drift=0 " in reconciled()


@server
@pytest.mark.parametrize(
    ("options", "billed_tokens", "source"),
    [("usage=123", 123, "prompt_tokens"), ("usage=none", 2, "counted")],
)
def test_a_request_is_billed_the_upstreams_usage_or_else_our_count(
    relay, tenant, group, fake_upstream, celery_worker, options, billed_tokens, source
):
    make_channel(group, fake_upstream.base_url(options))
    _api_key, secret = ApiKey.issue(tenant=tenant, group=group, name="usage")
    cost = cost_nanos(billed_tokens, SMALL_PRICE_NANOS)

    response = hello(relay, secret)

    assert response.status_code == 200, response.text
    assert live_now(tenant.pk) == (STARTING_BALANCE_NANOS - cost, 0)
    [record] = eventually(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.counted_tokens == 2
    assert record.tokens == billed_tokens
    assert record.token_source == source
    assert record.cost_nanos == cost
    eventually(lambda: balance_row(tenant) == STARTING_BALANCE_NANOS - cost)


@server
def test_an_upstream_reporting_more_tokens_than_were_held_never_overdraws(
    relay, group, fake_upstream, celery_worker
):
    make_channel(group, fake_upstream.base_url("usage=123"))
    tenant, _api_key, secret = funded_key(group, requests=1, name="understated")

    response = hello(relay, secret)  # held 40 nanos; the upstream bills 123 tokens (2,460)

    assert response.status_code == 200, response.text
    assert live_now(tenant.pk) == (0, 0)
    [record] = eventually(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.tokens == 123
    assert record.cost_nanos == HELLO_COST  # all the balance could cover
    caught_up(tenant)
    assert balance_row(tenant) == 0
    assert "drift=0 " in reconciled()
    assert hello(relay, secret).status_code == 429


# --- a key's own spending limit ---------------------------------------------------------


@server
def test_a_key_stops_at_its_spend_cap_while_the_tenants_other_keys_go_on(
    relay, tenant, group, secret, celery_worker
):
    capped_key, capped = ApiKey.issue(
        tenant=tenant, group=group, name="capped", spend_cap_nanos=3 * HELLO_COST
    )

    answers = [hello(relay, capped) for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200], answers[-1].text
    error = assert_envelope(answers[3], 429, "insufficient_quota")
    assert error["code"] == "key_quota_exceeded"
    assert "spending limit" in error["message"]
    assert "key" in error["message"]
    assert answers[3].headers["x-should-retry"] == "false"
    # The tenant still has money: its other key is served.
    assert hello(relay, secret).status_code == 200
    conn = live_sync.client()
    capped = live.key_key(capped_key.tenant_id, capped_key.pk)
    assert conn.hmget(capped, "spent", "held") == [b"120", b"0"]
    eventually(lambda: len(records(api_key=capped_key)) == 3)


# --- a failed request costs nothing ------------------------------------------------------


@server
def test_a_request_every_upstream_failed_releases_its_hold_and_costs_nothing(
    relay, tenant, group, fake_upstream, celery_worker
):
    make_channel(group, fake_upstream.base_url("status=503"), name="down")
    _api_key, secret = ApiKey.issue(tenant=tenant, group=group, name="unlucky")

    response = hello(relay, secret)

    assert_envelope(response, 502, "server_error")
    assert live_now(tenant.pk) == (STARTING_BALANCE_NANOS, 0)
    [record] = eventually(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.status == UsageRecord.Status.FAILED
    assert record.cost_nanos == 0
    assert balance_row(tenant) == STARTING_BALANCE_NANOS
    assert not LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE).exists()
