"""Money on the request path, end to end: a live relay, a real worker, real
PostgreSQL and Redis. A request reserves its cost, spends exactly what it
cost, and the books (PostgreSQL ledger, live Redis balance) always agree."""

import asyncio
import dataclasses
import datetime as dt
import io
import json
import subprocess
import sys
import time
import uuid

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing import ledger, live, live_sync
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.pricing import cost_nanos
from billing.reconcile import reconcile
from billing.tasks import apply_pending_ledger, sweep_expired_holds
from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes, ModelRoute
from relay.connections import pools
from relay.connections.lua_client import LuaClient
from relay.contract.errors import InvalidApiKey, ServiceUnavailable, error_response
from relay.contract.validation import EmbeddingRequest
from relay.pipeline import auth, gate
from tests.conftest import (
    ROOT,
    SMALL,
    SMALL_PRICE_NANOS,
    STARTING_BALANCE_NANOS,
    embed,
    make_channel,
    records,
    wait_until,
)

server = pytest.mark.django_db(transaction=True)

HELLO = "hello world"  # 2 cl100k tokens
HELLO_COST = cost_nanos(2, SMALL_PRICE_NANOS)  # 40 nanos
ENVELOPE_KEYS = {"message", "type", "param", "code"}
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
# The worker is a separate process on a shared two-core machine: generous, as a
# wait only ends early when the condition holds.
WORKER_TIMEOUT_S = 30


def eventually(condition):
    return wait_until(condition, timeout_s=WORKER_TIMEOUT_S)


def funded_key(group, *, requests: int, name: str = "funded", **key_fields):
    """A fresh tenant holding exactly ``requests`` HELLO requests' worth, and a key."""
    slug = f"{name}-{uuid.uuid4().hex[:8]}"
    tenant = Tenant.objects.create(slug=slug, name=slug)
    if requests:
        ledger.top_up(tenant=tenant, amount_nanos=requests * HELLO_COST, reason="test funds")
    api_key, secret = ApiKey.issue(tenant=tenant, group=group, name=name, **key_fields)
    return tenant, api_key, secret


def hello(relay, secret: str):
    return embed(relay, secret, {"model": SMALL, "input": HELLO})


def live_now(tenant_id: int) -> tuple[int, int] | None:
    return live_sync.live_balance(tenant_id)


def balance_row(tenant) -> int:
    return Balance.objects.get(tenant=tenant).balance_nanos


def stream_len() -> int:
    return redis.Redis.from_url(settings.REDIS_URL).xlen(settings.USAGE_STREAM)


def assert_envelope(response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == ENVELOPE_KEYS
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and error["message"]
    return error


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
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
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
    assert conn.hmget(live.key_key(capped_key.pk), "spent", "held") == [b"120", b"0"]
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


# --- Redis unreachable: fail closed ------------------------------------------------------

NO_LIMITS = GroupRoutes(group_id=1, limit_rpm=None, limit_tpm=None, limit_concurrency=None,
                        models={})


def test_a_hold_is_refused_with_503_when_redis_is_unreachable(monkeypatch):
    # Every other field (limits, expiry...) unset: only money is under test.
    unset = {f.name: None for f in dataclasses.fields(KeyContext)}
    key = KeyContext(**{**unset, "key_id": 1, "tenant_id": 1, "group_id": 1,
                        "prefix": "sk-test", "allowed_models": frozenset(), "allowed_ips": ()})
    route = ModelRoute(model=SMALL, price_per_mtok_nanos=SMALL_PRICE_NANOS, channels=())
    request = EmbeddingRequest(model=SMALL, input=HELLO, token_counts=[2])
    monkeypatch.setattr(
        pools, "redis", lambda: aioredis.Redis.from_url(DEAD_REDIS_URL)
    )
    monkeypatch.setattr(
        pools, "lua",
        lambda: LuaClient(DEAD_REDIS_URL, connect_timeout_s=1, reply_timeout_s=1),
    )

    async def place():
        return await gate.enter(key=key, routes=NO_LIMITS, route=route, request=request,
                                client_ip="127.0.0.1", request_id="req_dead")

    with pytest.raises(ServiceUnavailable) as refused:
        asyncio.run(place())

    assert refused.value.status == 503
    body = json.loads(error_response(refused.value).content)
    assert set(body["error"]) == ENVELOPE_KEYS
    assert body["error"]["type"] == "server_error"
    assert "balance" in body["error"]["message"]


# --- keeping the live balance in step ----------------------------------------------------


@server
def test_the_sweeper_releases_expired_holds_and_only_those(group):
    tenant, api_key, _secret = funded_key(group, requests=25, name="sweep")  # 1,000 nanos
    live_sync.load_tenant(tenant.pk)
    conn = live_sync.client()
    place = conn.register_script(live.HOLD)
    now_ms = int(time.time() * 1000)
    vanished = live.hold_member("req_vanished", tenant.pk, api_key.pk, 300, False)
    in_flight = live.hold_member("req_in_flight", tenant.pk, api_key.pk, 200, False)
    keys = [live.tenant_key(tenant.pk), live.key_key(api_key.pk), live.HOLDS]
    assert place(keys=keys, args=[300, -1, vanished, now_ms - 1000, -1]) == 1
    assert place(keys=keys, args=[200, -1, in_flight, now_ms + 60_000, -1]) == 1
    assert live_now(tenant.pk) == (1_000, 500)

    sweep_expired_holds()

    assert live_now(tenant.pk) == (1_000, 200)
    assert conn.zrange(live.HOLDS, 0, -1) == [in_flight.encode()]


@server
def test_a_ledger_entry_written_while_redis_is_down_reaches_the_live_balance_once(
    group, monkeypatch
):
    tenant, _api_key, _secret = funded_key(group, requests=25, name="offline")
    live_sync.load_tenant(tenant.pk)
    apply_pending_ledger()
    assert live_now(tenant.pk) == (1_000, 0)
    dead = redis.Redis.from_url(DEAD_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    monkeypatch.setattr(live_sync, "client", lambda: dead)

    entry = ledger.top_up(tenant=tenant, amount_nanos=500, reason="paid while Redis was down")

    entry.refresh_from_db()
    assert entry.live_applied is False
    monkeypatch.undo()
    assert live_now(tenant.pk) == (1_000, 0)

    apply_pending_ledger()
    assert live_now(tenant.pk) == (1_500, 0)
    apply_pending_ledger()
    assert live_now(tenant.pk) == (1_500, 0)
    entry.refresh_from_db()
    assert entry.live_applied is True
    assert balance_row(tenant) == 1_500


@server
def test_reconcile_finds_no_drift_right_after_a_tenant_is_loaded_live(group):
    tenant, _api_key, _secret = funded_key(group, requests=25, name="fresh")
    # The top-up could not be applied live: the tenant was not loaded yet.
    assert LedgerEntry.objects.get(tenant=tenant).live_applied is False

    live_sync.load_tenant(tenant.pk)

    assert live_now(tenant.pk) == (1_000, 0)  # the live balance is right
    [check] = [c for c in reconcile().tenants if c.tenant == tenant.slug]
    assert check.live_drift == 0
    assert check.healthy


# --- the legacy billing endpoints ---------------------------------------------------------


def dollars(nanos: int) -> float:
    return round(nanos / 10**9, 9)


@server
def test_the_subscription_endpoint_reports_the_balance_left(relay, tenant, secret):
    before = relay.get("/v1/dashboard/billing/subscription",
                       headers={"Authorization": f"Bearer {secret}"})
    assert before.status_code == 200, before.text
    assert before.json()["object"] == "billing_subscription"
    assert before.json()["hard_limit_usd"] == 100.0

    assert hello(relay, secret).status_code == 200
    after = relay.get("/v1/dashboard/billing/subscription",
                      headers={"Authorization": f"Bearer {secret}"})

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

    usage = relay.get("/v1/dashboard/billing/usage", headers=auth, params={
        "start_date": str(today), "end_date": str(today + dt.timedelta(days=1))})
    earlier = relay.get("/v1/dashboard/billing/usage", headers=auth, params={
        "start_date": str(today - dt.timedelta(days=3)), "end_date": str(today)})

    assert usage.status_code == 200, usage.text
    assert usage.json()["total_usage"] == round(spent / 1e9 * 100, 7)
    assert usage.json()["total_usage"] > 0
    assert earlier.json()["total_usage"] == 0


@server
def test_the_usage_endpoint_refuses_a_bad_date_in_the_envelope(relay, secret):
    response = relay.get("/v1/dashboard/billing/usage",
                         headers={"Authorization": f"Bearer {secret}"},
                         params={"start_date": "last tuesday"})

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


@server
def test_a_key_that_expires_is_refused_in_the_same_step_as_its_spend_cap(group):
    """Authentication checks expiry too, from a cached context; the hold
    checks it again on Redis's clock, atomically with the cap."""
    tenant, api_key, secret = funded_key(group, requests=25, name="expiring")
    api_key.spend_cap_nanos = 10_000
    api_key.expires = timezone.now() + dt.timedelta(milliseconds=300)
    api_key.save()
    context = asyncio.run(auth.authenticate(f"Bearer {secret}"))
    time.sleep(0.5)
    route = ModelRoute(model=SMALL, price_per_mtok_nanos=SMALL_PRICE_NANOS, channels=())
    request = EmbeddingRequest(model=SMALL, input=HELLO, token_counts=[2])
    with pytest.raises(InvalidApiKey) as refused:
        asyncio.run(gate.enter(key=context, routes=NO_LIMITS, route=route, request=request,
                               client_ip="127.0.0.1", request_id="req_exp"))
    assert refused.value.status == 401
    assert secret not in refused.value.message
    assert live_sync.client().zcard(live.HOLDS) == 0
