"""The request's two Redis steps (relay/pipeline/gate.py): limits and hold together
before the upstream call, settle or cancel together after it.

In-process against the real Redis and PostgreSQL of the test run: a hold is
refused with 503 when Redis is unreachable, and a key that expired is refused
in the same step as its spending limit. The limit arithmetic itself is tested
in tests/relay/limits/ and the money over HTTP in test_money.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone

from accounts.models import ApiKey
from billing import live, live_sync, redis_url, streams
from billing.pricing import cost_nanos
from billing.usage_events import FIELD, FIELD_CHARGE
from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes, ModelRoute
from relay.connections import pools
from relay.connections.lua_client import LuaClient
from relay.contract.errors import (
    InsufficientQuota,
    InvalidApiKey,
    RateLimited,
    ServiceUnavailable,
    error_response,
)
from relay.contract.validation import EmbeddingRequest
from relay.limits import rules
from relay.pipeline import auth, gate
from tests.helpers import (
    DEAD_REDIS_URL,
    ENVELOPE_KEYS,
    HELLO,
    HELLO_COST,
    SMALL,
    SMALL_PRICE_NANOS,
    embed,
    funded_key,
    run,
    usage_event,
    uses_live_relay,
)

server = pytest.mark.django_db(transaction=True)

ROUTE = ModelRoute(model=SMALL, price_per_mtok_nanos=SMALL_PRICE_NANOS, channels=())
REQUEST = EmbeddingRequest(model=SMALL, input=HELLO, token_counts=[2])


def routes(*, rpm=None, concurrency=None) -> GroupRoutes:
    return GroupRoutes(
        group_id=1, limit_rpm=rpm, limit_tpm=None, limit_concurrency=concurrency, models={}
    )


def sync_redis() -> redis.Redis:
    return redis_url.client(settings.REDIS_URL)


async def outcome(key, group_routes, request_id: str):
    try:
        return await gate.enter(
            key=key,
            routes=group_routes,
            route=ROUTE,
            request=REQUEST,
            client_ip="127.0.0.1",
            request_id=request_id,
        )
    except (RateLimited, InsufficientQuota) as refused:
        return refused


def context_of(secret: str):
    return run(auth.authenticate(f"Bearer {secret}"))


@server
def test_a_request_the_balance_refuses_takes_no_rate_and_no_slot(group):
    tenant, api_key, secret = funded_key(group, requests=1, name="gate-poor")
    key = context_of(secret)
    limited = routes(rpm=2, concurrency=5)

    async def scenario():
        first = await outcome(key, limited, "req_gate_a")
        await first.settle(usage_event(api_key, request_id="req_gate_a", tokens=2))
        # The balance is spent: refused for money, again and again, and the
        # RPM of 2 is not used up by those refusals.
        refusals = [await outcome(key, limited, f"req_gate_p{i}") for i in range(3)]
        return first, refusals

    first, refusals = run(scenario())

    assert isinstance(first, gate.Entry)
    assert [type(r).__name__ for r in refusals] == ["InsufficientQuota"] * 3
    conn = sync_redis()
    level = int(conn.hget(rules.bucket_keys(api_key.tenant_id, api_key.pk)[0], "r"))
    assert level == 60_000_000  # exactly one request (level x PERIOD_US)
    assert conn.zcard(rules.bucket_keys(api_key.tenant_id, api_key.pk)[2]) == 0
    assert conn.zcard(live.holds_key(api_key.tenant_id)) == 0
    assert live_sync.live_balance(tenant.pk) == (0, 0)


@server
def test_a_request_a_limit_refuses_places_no_hold(group):
    tenant, _api_key, secret = funded_key(group, requests=10, name="gate-fast")
    key = context_of(secret)

    async def scenario():
        return [await outcome(key, routes(rpm=1), f"req_gate_r{i}") for i in range(2)]

    admitted, refused = run(scenario())

    assert isinstance(admitted, gate.Entry) and isinstance(refused, RateLimited)
    assert admitted.headers["x-ratelimit-limit-requests"] == "1"
    [member] = sync_redis().zrange(live.holds_key(tenant.pk), 0, -1)
    assert member.decode().startswith("req_gate_r0|")
    assert live_sync.live_balance(tenant.pk) == (10 * HELLO_COST, HELLO_COST)


@server
def test_settle_spends_the_hold_queues_the_event_and_frees_the_slot(group):
    tenant, api_key, secret = funded_key(group, requests=10, name="gate-settle")
    key = context_of(secret)
    conn = sync_redis()
    queued = conn.xlen(streams.stream_for(api_key.tenant_id))

    async def scenario():
        entry = await outcome(key, routes(concurrency=1), "req_gate_s")
        slots_while_in_flight = conn.zcard(rules.bucket_keys(api_key.tenant_id, api_key.pk)[2])
        await entry.settle(usage_event(api_key, request_id="req_gate_s", tokens=3))
        return slots_while_in_flight

    assert run(scenario()) == 1
    assert conn.zcard(rules.bucket_keys(api_key.tenant_id, api_key.pk)[2]) == 0
    assert conn.zcard(live.holds_key(api_key.tenant_id)) == 0
    charged = cost_nanos(3, SMALL_PRICE_NANOS)
    assert live_sync.live_balance(tenant.pk) == (10 * HELLO_COST - charged, 0)
    assert conn.xlen(streams.stream_for(api_key.tenant_id)) == queued + 1
    assert conn.exists(live.applied_key(api_key.tenant_id, 0, "req_gate_s"))


@server
def test_cancel_gives_back_the_hold_and_the_slot_and_notes_a_failure(group):
    tenant, api_key, secret = funded_key(group, requests=10, name="gate-cancel")
    key = context_of(secret)
    conn = sync_redis()
    queued = conn.xlen(streams.stream_for(api_key.tenant_id))

    async def scenario():
        quiet = await outcome(key, routes(concurrency=1), "req_gate_c1")
        await quiet.cancel()
        failed = await outcome(key, routes(concurrency=1), "req_gate_c2")
        note = usage_event(api_key, request_id="req_gate_c2", tokens=0, status="failed")
        await failed.cancel(note)

    run(scenario())

    assert conn.zcard(rules.bucket_keys(api_key.tenant_id, api_key.pk)[2]) == 0
    assert conn.zcard(live.holds_key(api_key.tenant_id)) == 0
    assert live_sync.live_balance(tenant.pk) == (10 * HELLO_COST, 0)
    # Only the failed request is noted (for the channel's error rate), at no charge.
    [(_id, fields)] = conn.xrange(streams.stream_for(api_key.tenant_id), "-", "+")[queued:]
    assert b"req_gate_c2" in fields[FIELD.encode()]
    assert fields[FIELD_CHARGE.encode()] == b"0"


@server
def test_a_request_cancelled_while_entering_leaves_nothing_held(group):
    tenant, api_key, secret = funded_key(group, requests=10, name="gate-gone")
    key = context_of(secret)
    live_sync.load_tenant(tenant.pk)  # so the first attempt places the hold

    async def scenario():
        # Connected first, so the script is written at once and the request
        # is cancelled while it waits for the reply.
        warm = await outcome(key, routes(concurrency=1), "req_gate_warm")
        await warm.cancel()
        task = asyncio.ensure_future(outcome(key, routes(concurrency=1), "req_gate_x"))
        await asyncio.sleep(0)  # the script is on its way to Redis
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the give-back runs in the background
            if sync_redis().zcard(live.holds_key(api_key.tenant_id)) == 0:
                break
            await asyncio.sleep(0.01)

    run(scenario())

    assert sync_redis().zcard(live.holds_key(api_key.tenant_id)) == 0
    assert sync_redis().zcard(rules.bucket_keys(api_key.tenant_id, api_key.pk)[2]) == 0
    assert live_sync.live_balance(tenant.pk) == (10 * HELLO_COST, 0)


@uses_live_relay
def test_a_client_with_one_slot_never_finds_it_still_taken_by_its_last_request(
    relay, tenant, group, channel
):
    """The answer goes out before the settle's reply comes back, but after
    the settle (which frees the slot) is on its way to Redis: a client that
    sends its next request the moment it has an answer is never refused."""
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="one-slot", limit_concurrency=1)
    statuses = [
        embed(relay, secret, {"model": SMALL, "input": "next"}).status_code for _ in range(60)
    ]
    assert statuses == [200] * 60


# --- Redis unreachable: fail closed ------------------------------------------------------


def test_a_hold_is_refused_with_503_when_redis_is_unreachable(monkeypatch):
    # Every other field (limits, expiry...) unset: only money is under test.
    unset = {f.name: None for f in dataclasses.fields(KeyContext)}
    key = KeyContext(
        **{
            **unset,
            "key_id": 1,
            "tenant_id": 1,
            "group_id": 1,
            "prefix": "sk-test",
            "allowed_models": frozenset(),
            "allowed_ips": (),
        }
    )
    monkeypatch.setattr(pools, "redis", lambda: aioredis.Redis.from_url(DEAD_REDIS_URL))
    monkeypatch.setattr(
        pools,
        "lua",
        lambda: LuaClient(DEAD_REDIS_URL, connect_timeout_s=1, reply_timeout_s=1),
    )

    with pytest.raises(ServiceUnavailable) as refused:
        asyncio.run(outcome(key, routes(), "req_dead"))

    assert refused.value.status == 503
    body = json.loads(error_response(refused.value).content)
    assert set(body["error"]) == ENVELOPE_KEYS
    assert body["error"]["type"] == "server_error"
    assert "balance" in body["error"]["message"]


# --- a key's expiry, checked again with its spending limit --------------------------------


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
    with pytest.raises(InvalidApiKey) as refused:
        asyncio.run(outcome(context, routes(), "req_exp"))
    assert refused.value.status == 401
    assert secret not in refused.value.message
    assert live_sync.client().zcard(live.holds_key(api_key.tenant_id)) == 0
