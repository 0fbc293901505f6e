"""Usage records: one per served request, with the right tokens and cost,
written exactly once whatever happens to the workers or to Redis."""

import asyncio

import pytest
from django.conf import settings

from accounts.models import ApiKey
from billing import redis_url, streams
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.pricing import cost_nanos
from billing.tasks import drain_usage_events
from billing.usage import record_usage
from billing.usage_events import CONSUMER_GROUP, FIELD, UsageEvent
from relay.connections import pools
from relay.connections.lua_client import LuaClient
from relay.pipeline import gate, money
from tests.billing.helpers import restart_if_dead
from tests.helpers import (
    SMALL,
    SMALL_PRICE_NANOS,
    STARTING_BALANCE_NANOS,
    embed,
    make_channel,
    records,
    usage_event,
    uses_live_relay,
    wait_until,
)

FOX = "The quick brown fox jumps over the lazy dog"  # 9 cl100k tokens
TWO_ITEMS = [FOX, "hello world"]  # 9 + 2 tokens
TWO_ITEMS_TOKENS = 11


@pytest.fixture
def issued(tenant, group) -> tuple[ApiKey, str]:
    """A key whose group has no channel yet: each test sets up its own."""
    return ApiKey.issue(tenant=tenant, group=group, name="usage")


@pytest.fixture
def key(issued) -> str:
    return issued[1]


def stream_len() -> int:
    conn = redis_url.client(settings.REDIS_URL)
    return sum(conn.xlen(stream) for stream in streams.all_streams())


def event_for(api_key: ApiKey, request_id: str, *, tokens: int = 9) -> UsageEvent:
    return usage_event(api_key, request_id=request_id, tokens=tokens)


def balance_nanos(tenant_id: int) -> int:
    return Balance.objects.get(tenant_id=tenant_id).balance_nanos


def recorded_ids() -> list[str]:
    return list(UsageRecord.objects.values_list("request_id", flat=True))


# --- one record per served request ------------------------------------------------


@uses_live_relay
def test_every_served_request_gets_exactly_one_complete_record(
    relay, issued, key, group, fake_upstream, celery_worker
):
    api_key, _secret = issued
    channel = make_channel(group, fake_upstream.base_url("latency=25"))
    sent = {}
    for n in range(20):
        inputs = [f"item {i} of request {n}" for i in range(n % 4 + 1)]
        response = embed(relay, key, {"model": SMALL, "input": inputs, "user": f"user-{n}"})
        assert response.status_code == 200, response.text
        sent[response.headers["x-request-id"]] = (inputs, f"user-{n}", response.json())

    assert len(sent) == 20
    wait_until(lambda: UsageRecord.objects.count() >= 20)
    wait_until(lambda: stream_len() == 0)  # nothing more is on its way
    by_id = {record.request_id: record for record in records()}
    assert set(by_id) == set(sent)
    for request_id, (inputs, user, body) in sent.items():
        record = by_id[request_id]
        prompt_tokens = body["usage"]["prompt_tokens"]
        assert prompt_tokens > 0
        assert record.tokens == prompt_tokens
        assert record.counted_tokens == prompt_tokens
        assert record.token_source == "prompt_tokens"
        assert record.price_per_mtok_nanos == SMALL_PRICE_NANOS
        assert record.cost_nanos == cost_nanos(prompt_tokens, SMALL_PRICE_NANOS)
        assert record.cost_nanos > 0
        assert record.model == SMALL
        assert record.served_model == SMALL
        assert record.input_count == len(inputs)
        assert record.end_user == user
        assert record.latency_ms >= 25
        assert record.status == "served"
        assert record.channel_id == channel.pk
        assert record.tenant_id == api_key.tenant_id
        assert record.api_key_id == api_key.pk
        assert record.group_id == group.pk


@uses_live_relay
@pytest.mark.parametrize(
    ("options", "billed", "source"),
    [
        ("usage=none", TWO_ITEMS_TOKENS, "counted"),
        ("usage=zero", TWO_ITEMS_TOKENS, "counted"),
        ("usage=123", 123, "prompt_tokens"),
    ],
)
def test_billing_falls_back_from_upstream_usage_to_our_count(
    relay, key, group, fake_upstream, celery_worker, options, billed, source
):
    make_channel(group, fake_upstream.base_url(options))

    response = embed(relay, key, {"model": SMALL, "input": TWO_ITEMS})

    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {"prompt_tokens": billed, "total_tokens": billed}
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.tokens == billed
    assert record.token_source == source
    assert record.counted_tokens == TWO_ITEMS_TOKENS
    assert record.cost_nanos == cost_nanos(billed, SMALL_PRICE_NANOS)


@uses_live_relay
def test_an_upstream_reporting_only_total_tokens_is_billed_its_total(
    relay, key, group, fake_upstream, celery_worker
):
    make_channel(group, fake_upstream.base_url("usage=total"))

    response = embed(relay, key, {"model": SMALL, "input": TWO_ITEMS})

    assert response.status_code == 200, response.text
    assert response.json()["usage"]["total_tokens"] == TWO_ITEMS_TOKENS
    [record] = wait_until(lambda: records(request_id=response.headers["x-request-id"]))
    assert record.tokens == TWO_ITEMS_TOKENS
    assert record.token_source == "total_tokens"
    assert record.cost_nanos == cost_nanos(TWO_ITEMS_TOKENS, SMALL_PRICE_NANOS)


@uses_live_relay
def test_a_client_gets_prompt_tokens_when_the_upstream_reports_only_total_tokens(
    relay, key, group, fake_upstream
):
    make_channel(group, fake_upstream.base_url("usage=total"))

    response = embed(relay, key, {"model": SMALL, "input": TWO_ITEMS})

    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {
        "prompt_tokens": TWO_ITEMS_TOKENS,
        "total_tokens": TWO_ITEMS_TOKENS,
    }


# --- exactly once ---------------------------------------------------------------------


@uses_live_relay
def test_a_usage_event_appended_twice_is_recorded_once(issued):
    api_key, _secret = issued
    event = event_for(api_key, "req_redelivered_0001")
    conn = redis_url.client(settings.REDIS_URL)
    conn.xadd(streams.stream_for(api_key.tenant_id), {FIELD: event.encode()})
    conn.xadd(streams.stream_for(api_key.tenant_id), {FIELD: event.encode()})

    drain_usage_events()
    drain_usage_events()

    # The session's worker, when running, may be the one that drained them.
    wait_until(lambda: records(request_id="req_redelivered_0001"))
    [record] = records(request_id="req_redelivered_0001")
    assert record.tokens == 9
    assert record.cost_nanos == cost_nanos(9, SMALL_PRICE_NANOS)
    assert UsageRecord.objects.count() == 1
    assert balance_nanos(api_key.tenant_id) == STARTING_BALANCE_NANOS - record.cost_nanos


@uses_live_relay
def test_a_usage_event_redelivered_after_it_was_recorded_is_not_recorded_again(issued):
    api_key, _secret = issued
    event = event_for(api_key, "req_redelivered_0002")
    conn = redis_url.client(settings.REDIS_URL)

    conn.xadd(streams.stream_for(api_key.tenant_id), {FIELD: event.encode()})
    drain_usage_events()
    wait_until(lambda: records(request_id="req_redelivered_0002"))
    conn.xadd(streams.stream_for(api_key.tenant_id), {FIELD: event.encode()})
    drain_usage_events()

    assert UsageRecord.objects.count() == 1
    wait_until(lambda: stream_len() == 0)  # acknowledged, here or by the worker
    debited = cost_nanos(9, SMALL_PRICE_NANOS)
    assert balance_nanos(api_key.tenant_id) == STARTING_BALANCE_NANOS - debited


@uses_live_relay
def test_recording_the_same_event_again_writes_nothing(issued):
    api_key, _secret = issued
    event = event_for(api_key, "req_recorded_twice_01")

    first = record_usage([(event, None), (event, None)], live_applied=True)
    second = record_usage([(event, None)], live_applied=True)

    assert [record.request_id for record in first] == ["req_recorded_twice_01"]
    assert second == []
    assert UsageRecord.objects.filter(request_id="req_recorded_twice_01").count() == 1
    assert UsageRecord.objects.count() == 1
    debited = cost_nanos(9, SMALL_PRICE_NANOS)
    assert balance_nanos(api_key.tenant_id) == STARTING_BALANCE_NANOS - debited


@uses_live_relay
def test_a_killed_worker_loses_and_duplicates_no_usage(
    relay, key, channel, group, fake_upstream, celery_worker
):
    served = []

    def send(count: int) -> None:
        for n in range(count):
            response = embed(relay, key, {"model": SMALL, "input": f"request {len(served)} {n}"})
            assert response.status_code == 200, response.text
            served.append(response.headers["x-request-id"])

    try:
        send(15)
        celery_worker.kill()
        send(15)
        celery_worker.start()
        send(15)
        wait_until(lambda: UsageRecord.objects.count() >= len(served), timeout_s=45)
        wait_until(lambda: stream_len() == 0, timeout_s=15)
    finally:
        restart_if_dead(celery_worker)

    ids = recorded_ids()
    assert len(ids) == len(set(ids)) == 45
    assert set(ids) == set(served)


@uses_live_relay
def test_events_a_dead_worker_had_claimed_are_recorded_by_the_next(
    relay, tenant, key, channel, group, fake_upstream, celery_worker
):
    stream = streams.stream_for(tenant.pk)
    try:
        celery_worker.kill()
        served = []
        for n in range(5):
            response = embed(relay, key, {"model": SMALL, "input": f"claimed {n}"})
            assert response.status_code == 200, response.text
            served.append(response.headers["x-request-id"])
        # A consumer reads the events and dies before acknowledging them.
        conn = streams.client()
        streams.ensure_group(conn, stream)
        [(_stream, claimed)] = conn.xreadgroup(
            CONSUMER_GROUP, "dead-consumer", {stream: ">"}, count=100
        )
        assert len(claimed) == 5
        celery_worker.start()
        wait_until(lambda: UsageRecord.objects.count() >= 5, timeout_s=30)
        wait_until(lambda: conn.xpending(stream, CONSUMER_GROUP)["pending"] == 0)
    finally:
        restart_if_dead(celery_worker)

    assert sorted(recorded_ids()) == sorted(served)


@uses_live_relay
def test_an_event_for_a_deleted_key_does_not_stop_other_usage_being_recorded(
    tenant, group, issued, celery_worker
):
    api_key, _secret = issued
    doomed, _doomed_secret = ApiKey.issue(tenant=tenant, group=group, name="doomed")
    orphan = event_for(doomed, "req_for_deleted_key_1")
    doomed.delete()  # e.g. an operator deletes a key before its last events are drained
    good = event_for(api_key, "req_after_orphan_0001")
    conn = redis_url.client(settings.REDIS_URL)
    # Both in one MULTI, so the worker reads them in one batch.
    pipe = conn.pipeline(transaction=True)
    stream = streams.stream_for(api_key.tenant_id)
    pipe.xadd(stream, {FIELD: orphan.encode()})
    pipe.xadd(stream, {FIELD: good.encode()})
    orphan_id, _good_id = pipe.execute()

    try:
        # Re-claimed after 2 s, the batch is retried several times within this.
        [record] = wait_until(lambda: records(request_id="req_after_orphan_0001"), timeout_s=8)
        assert record.api_key_id == api_key.pk
        [(_id, fields)] = conn.xrange(streams.dead_letter_stream(stream))
        assert UsageEvent.decode(fields[FIELD.encode()]).request_id == "req_for_deleted_key_1"
    finally:
        # Take the orphan out, so the worker can finish before the flush.
        conn.xack(stream, CONSUMER_GROUP, orphan_id)
        conn.xdel(stream, orphan_id)


# --- refused requests cost nothing ------------------------------------------------------


@uses_live_relay
def test_refused_requests_leave_no_usage_record(relay, key, channel, celery_worker):
    refused = [
        embed(relay, "sk-not-a-real-key-000000000000", {"model": SMALL, "input": FOX}),
        embed(relay, key, {"model": SMALL, "input": ""}),
        embed(relay, key, b"{not json"),
        embed(relay, key, {"model": "no-such-model", "input": FOX}),
    ]
    assert [r.status_code for r in refused] == [401, 400, 400, 404]

    # Events are drained in order: once a later request is recorded, any
    # record of the refused ones would be there too.
    served = embed(relay, key, {"model": SMALL, "input": FOX})
    assert served.status_code == 200, served.text
    [record] = wait_until(lambda: records(request_id=served.headers["x-request-id"]))

    assert recorded_ids() == [record.request_id]
    refused_ids = {r.headers["x-request-id"] for r in refused}
    assert len(refused_ids) == 4
    assert not UsageRecord.objects.filter(request_id__in=refused_ids).exists()
    assert sum(UsageRecord.objects.values_list("cost_nanos", flat=True)) == record.cost_nanos
    assert balance_nanos(record.tenant_id) == STARTING_BALANCE_NANOS - record.cost_nanos


# --- Redis down -------------------------------------------------------------------------


@uses_live_relay
def test_a_usage_event_goes_straight_to_the_database_when_redis_is_down(issued, monkeypatch):
    api_key, _secret = issued
    event = event_for(api_key, "req_redis_down_0001", tokens=42)
    cost = cost_nanos(42, SMALL_PRICE_NANOS)
    # The request was held and served; Redis went away before it was settled.
    placed = money.Hold(
        tenant_id=api_key.tenant_id,
        api_key_id=api_key.pk,
        amount_nanos=cost,
        capped=False,
        member="req_redis_down_0001:hold",
    )
    monkeypatch.setattr(
        pools,
        "lua",
        lambda: LuaClient("redis://127.0.0.1:1/0", connect_timeout_s=1, reply_timeout_s=1),
    )

    entered = gate.Entry(headers={}, hold=placed, slot_keys=(), slot_id="")

    async def settle():
        await entered.settle(event)

    asyncio.run(settle())

    [record] = records(request_id="req_redis_down_0001")
    assert record.tokens == 42
    assert record.cost_nanos == cost
    assert record.status == "served"
    assert stream_len() == 0
    # The debit reached PostgreSQL, flagged for the live balance to catch up.
    [entry] = LedgerEntry.objects.filter(tenant_id=api_key.tenant_id, kind="usage")
    assert entry.amount_nanos == -cost
    assert entry.live_applied is False
    assert balance_nanos(api_key.tenant_id) == STARTING_BALANCE_NANOS - cost
