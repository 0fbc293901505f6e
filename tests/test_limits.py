"""Rate limits (relay/limits/rules.py): RPM, TPM and requests in flight per key and
per tenant, the x-ratelimit-* headers, OpenAI's 429, the Redis-down
fallback, IP allow-lists and the limit on invalid keys.

In-process tests call ``admission.admit`` with a real Redis; end-to-end tests go
through the live relay to the fake upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import redis as redis_lib
import redis.asyncio as aioredis
from django.conf import settings

from accounts.models import ApiKey
from billing.models import UsageRecord
from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes
from relay.connections import pools
from relay.contract.errors import PermissionDenied, RateLimited
from relay.lib.addresses import client_ip
from relay.limits import admission, fallback
from relay.limits.gcra import PERIOD_US, Limits, LocalLimiter, format_duration
from tests.conftest import SMALL, embed, make_channel, records, uses_live_relay, wait_until

# Distinct ids per test, so the per-process fallback state of one test never
# meets another's.
_ids = itertools.count(random.randrange(10**6, 10**9, 1000))


def key_context(
    *, rpm=None, tpm=None, concurrency=None, tenant_rpm=None, tenant_tpm=None,
    tenant_concurrency=None, allowed_ips=(), tenant_id=None,
) -> KeyContext:
    key_id = next(_ids)
    return KeyContext(
        key_id=key_id, tenant_id=tenant_id or key_id, group_id=1, prefix="sk-test",
        last4="test", expires=None, allowed_models=frozenset(),
        allowed_ips=tuple(allowed_ips),
        spend_cap_nanos=None, limit_rpm=rpm, limit_tpm=tpm, limit_concurrency=concurrency,
        tenant_limit_rpm=tenant_rpm, tenant_limit_tpm=tenant_tpm,
        tenant_limit_concurrency=tenant_concurrency,
    )


def group_routes(*, rpm=None, tpm=None, concurrency=None) -> GroupRoutes:
    return GroupRoutes(
        group_id=1, limit_rpm=rpm, limit_tpm=tpm, limit_concurrency=concurrency, models={}
    )


NO_GROUP_LIMITS = group_routes()


async def try_admit(key, tokens=1, routes=NO_GROUP_LIMITS, ip="127.0.0.1"):
    """The Admission, or the RateLimited it raised."""
    try:
        return await admission.admit(
            key=key, routes=routes, model=SMALL, tokens=tokens, client_ip=ip
        )
    except RateLimited as refused:
        return refused


def run(coroutine):
    async def main():
        try:
            return await coroutine
        finally:
            await pools.redis().aclose()

    return asyncio.run(main())


def seconds(duration: str) -> float:
    """Parse what format_duration writes (1m30s, 8.64s, 20ms)."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?", duration)
    assert match, duration
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + int(ms or 0) / 1000


# --- the arithmetic, on a controlled clock ----------------------------------------


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0s"), (1, "1ms"), (20_000, "20ms"), (999_000, "999ms"), (999_001, "1s"),
        (1_000_000, "1s"), (8_640_000, "8.64s"), (20_000_000, "20s"), (60_000_000, "1m0s"),
        (90_000_000, "1m30s"), (360_000_000, "6m0s"), (3_723_500_000, "1h2m3.5s"),
    ],
)
def test_durations_read_like_openais(us, text):
    assert format_duration(us) == text


def test_a_burst_of_the_limit_passes_then_one_request_per_interval():
    limiter, keys = LocalLimiter(), ("k", "t", "ks", "ts")
    rpm3 = Limits(3, None, None, None, None, None)
    t0 = 1_000_000_000
    answers = [limiter.admit(keys, rpm3, 1, t0) for _ in range(4)]
    assert [a.refused for a in answers] == [0, 0, 0, 1]
    assert [a.rpm_remaining for a in answers] == [2, 1, 0, 0]
    # Reset is when the bucket is empty again: 20 s per request used.
    assert [a.rpm_reset_us for a in answers] == [20e6, 40e6, 60e6, 60e6]
    assert (answers[3].used, answers[3].retry_us) == (3, 20_000_000)
    # One microsecond early is still too early; on time passes.
    assert limiter.admit(keys, rpm3, 1, t0 + 20_000_000 - 1).retry_us == 1
    on_time = limiter.admit(keys, rpm3, 1, t0 + 20_000_000)
    assert (on_time.refused, on_time.rpm_remaining, on_time.rpm_reset_us) == (0, 0, 60e6)
    # After a quiet minute the whole burst is back.
    later = limiter.admit(keys, rpm3, 1, t0 + 80_000_000)
    assert (later.refused, later.rpm_remaining, later.rpm_reset_us) == (0, 2, 20e6)


def test_tokens_are_charged_by_size_and_an_oversized_request_can_never_pass():
    limiter, keys = LocalLimiter(), ("k", "t", "ks", "ts")
    tpm = Limits(None, 1000, None, None, None, None)
    t0 = 5_000_000
    first = limiter.admit(keys, tpm, 990, t0)
    assert (first.refused, first.tpm_remaining, first.tpm_reset_us) == (0, 10, 59_400_000)
    refused = limiter.admit(keys, tpm, 50, t0)
    # 40 tokens over; 1000 per minute drain one every 60 ms.
    assert (refused.refused, refused.used, refused.retry_us) == (2, 990, 2_400_000)
    assert limiter.admit(keys, tpm, 10, t0).refused == 0  # what is left still fits
    assert limiter.admit(keys, tpm, 1001, t0 + 10 * PERIOD_US).retry_us == -1


def test_every_limit_must_pass_and_a_refusal_records_nothing():
    limiter, keys = LocalLimiter(), ("k", "t", "ks", "ts")
    both = Limits(10, 100, 2, None, 1, None)
    t0 = 0
    assert limiter.admit(keys, both, 60, t0).refused == 0
    # The key's in-flight limit (position 5) is full; nothing else is taken.
    busy = limiter.admit(keys, both, 10, t0)
    assert (busy.refused, busy.used) == (5, 1)
    assert busy.rpm_remaining == 9 and busy.tpm_remaining == 40
    limiter.release(("ks",))
    over = limiter.admit(keys, both, 50, t0)  # 110 of 100 tokens
    assert (over.refused, over.retry_us) == (2, 6_000_000)
    assert limiter.admit(keys, both, 40, t0).refused == 0  # the tenant's 2 RPM are used now
    # When several refuse, the one with the longest wait is named, so a
    # client that waits that long can pass: the tenant's RPM (30 s) here...
    assert limiter.admit(keys, both, 1, t0).refused == 3
    # ...and a request that can never fit the TPM beats any wait.
    assert limiter.admit(keys, both, 101, t0).refused == 2


def test_a_fallback_share_never_rounds_a_limit_down_to_nothing():
    assert Limits(10, 1, 0, None, 3, 1).share(2) == Limits(5, 1, 0, None, 1, 1)


# --- the Redis script ---------------------------------------------------------------


def test_the_script_agrees_with_the_python_arithmetic():
    key = key_context(rpm=4, tpm=100)

    async def scenario():
        return [await try_admit(key, tokens) for tokens in (30, 30, 30, 30, 5)]

    answers = run(scenario())
    assert all(isinstance(a, admission.Admission) for a in answers[:3])
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:3]] == ["3", "2", "1"]
    assert [a.headers["x-ratelimit-remaining-tokens"] for a in answers[:3]] == ["70", "40", "10"]
    # 30 tokens over a 100 TPM limit drain in 18 s; Redis's clock moved a little.
    assert 44.9 < seconds(answers[2].headers["x-ratelimit-reset-requests"]) <= 45
    assert 53.9 < seconds(answers[2].headers["x-ratelimit-reset-tokens"]) <= 54
    refused = answers[3]
    assert isinstance(refused, RateLimited) and refused.type == "tokens"
    assert refused.message.startswith(
        f"Rate limit reached for {SMALL} on tokens per min (TPM): Limit 100, Used 90, "
        "Requested 30. Please try again in 1"  # 20 tokens over: ~12 s
    )
    assert isinstance(answers[4], admission.Admission)  # 5 tokens still fit


def test_an_unlimited_key_gets_no_headers_and_costs_no_redis_call(monkeypatch):
    def no_redis():
        raise AssertionError("Redis was called for a key without limits")

    monkeypatch.setattr(pools, "redis", no_redis)
    admission = asyncio.run(try_admit(key_context()))
    assert admission.headers == {} and admission.slot is None


def fire(key_and_routes, costs, start, results):
    """One OS process: every cost as its own concurrent request."""
    key, routes = key_and_routes

    async def one(tokens):
        answer = await try_admit(key, tokens, routes)
        return tokens if isinstance(answer, admission.Admission) else -tokens

    async def main():
        start.wait()
        began = time.monotonic()
        outcome = await asyncio.gather(*(one(c) for c in costs))
        return outcome, time.monotonic() - began

    results.put(run(main()))


def fire_from_processes(key, routes, costs_per_process):
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=fire, args=((key, routes), costs, start, results))
        for costs in costs_per_process
    ]
    for process in processes:
        process.start()
    time.sleep(0.3)  # all forked and waiting
    start.set()
    outcomes = [results.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(10)
    return [o for outcome, _ in outcomes for o in outcome], max(t for _, t in outcomes)


def test_exactly_the_rpm_limit_is_admitted_across_processes():
    # 30 RPM refills one request every 2 s; the burst must be exactly 30.
    key = key_context(rpm=30)
    outcome, elapsed_s = fire_from_processes(key, NO_GROUP_LIMITS, [[1] * 60] * 4)
    admitted = sum(1 for o in outcome if o > 0)
    # Exactly 30 when the run takes under 2 s (it takes a fraction of that);
    # on a crawling machine, plus one per 2 s refilled and no more.
    assert 30 <= admitted <= 30 + int(elapsed_s / 2.0)
    assert admitted + sum(1 for o in outcome if o < 0) == 240


def test_the_tpm_limit_holds_across_processes_with_mixed_sizes():
    key = key_context(tpm=600)  # refills 10 tokens a second
    rng = random.Random(7)
    costs = [[rng.randint(1, 40) for _ in range(50)] for _ in range(4)]
    outcome, elapsed_s = fire_from_processes(key, NO_GROUP_LIMITS, costs)
    admitted = sum(o for o in outcome if o > 0)
    refill = int(elapsed_s * 10) + 1
    assert admitted <= 600 + refill
    # It admits up to the limit: what is left is less than the largest request.
    assert admitted > 600 - 40
    assert sum(1 for o in outcome if o < 0) > 100


def test_two_keys_of_one_tenant_share_the_tenant_rpm():
    tenant_id = next(_ids)
    first = key_context(tenant_rpm=5, tenant_id=tenant_id)
    second = key_context(tenant_rpm=5, tenant_id=tenant_id)

    async def scenario():
        return [await try_admit(k) for k in (first, second) * 4]

    answers = run(scenario())
    assert [isinstance(a, admission.Admission) for a in answers] == [True] * 5 + [False] * 3
    assert answers[5].message.startswith(
        f"Rate limit reached for {SMALL} in your organization (all its API keys together) "
        "on requests per min (RPM): Limit 5, Used 5, Requested 1. Please try again in 1"
    )


def test_an_in_flight_slot_is_freed_on_release_even_when_the_task_is_cancelled():
    key = key_context(concurrency=1)
    slots = redis_lib.Redis.from_url(settings.REDIS_URL)

    async def scenario():
        admission = await try_admit(key)
        assert isinstance(await try_admit(key), RateLimited)

        async def request():
            try:
                await asyncio.sleep(10)  # the upstream call
            finally:
                await admission.release()

        task = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await try_admit(key)

    again = run(scenario())
    assert isinstance(again, admission.Admission)
    assert slots.zcard(f"rl:k:{key.key_id}:slots") == 1  # only the new one


def test_a_slot_left_by_a_dead_process_expires(settings):
    settings.RELAY_INFLIGHT_SLOT_TTL_S = 1
    key = key_context(concurrency=1)

    async def scenario():
        await try_admit(key)  # never released: its process "died"
        refused = await try_admit(key)
        await asyncio.sleep(1.05)
        return refused, await try_admit(key)

    refused, later = run(scenario())
    assert isinstance(refused, RateLimited) and refused.type == "requests"
    assert "on concurrent requests: Limit 1, In flight 1" in refused.message
    assert isinstance(later, admission.Admission)


# --- Redis down ------------------------------------------------------------------------


def test_with_redis_down_each_process_enforces_its_share(monkeypatch, settings):
    settings.RELAY_FALLBACK_PROCESSES = 2
    key = key_context(rpm=10, concurrency=2)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    before = fallback.fallback_activations()

    async def scenario():
        served = []
        for _ in range(3):  # Redis up: shared limits
            served.append(await try_admit(key))
            await served[-1].release()
        monkeypatch.setattr(pools, "redis", lambda: dead)
        answers = []
        for _ in range(8):
            answers.append(await try_admit(key))
            if isinstance(answers[-1], admission.Admission):
                await answers[-1].release()
        return served, answers

    served, answers = run(scenario())
    assert all(isinstance(a, admission.Admission) for a in served)
    # Half of 10 RPM in this process (the fallback knows nothing of the 3 before).
    outcome = [type(a).__name__ for a in answers]
    assert outcome == ["Admission"] * 5 + ["RateLimited"] * 3
    assert answers[0].headers["x-ratelimit-limit-requests"] == "5"
    assert fallback.fallback_activations() - before == 8


def test_redis_failing_mid_load_leaves_only_admissions_and_429s(monkeypatch, settings):
    settings.RELAY_FALLBACK_PROCESSES = 1
    key = key_context(rpm=1000, concurrency=20)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    before = fallback.fallback_activations()

    async def request():
        answer = await try_admit(key)
        if isinstance(answer, admission.Admission):
            await asyncio.sleep(0.02)  # the upstream call
            await answer.release()
        return answer

    async def scenario():
        alive = pools.redis()
        first = [asyncio.create_task(request()) for _ in range(60)]
        await asyncio.sleep(0)  # their scripts are on the wire now
        # Redis "dies" under them: open connections drop, new ones are refused.
        monkeypatch.setattr(pools, "redis", lambda: dead)
        await alive.connection_pool.disconnect()
        second = [asyncio.create_task(request()) for _ in range(60)]
        return await asyncio.gather(*first, *second, return_exceptions=True)

    outcome = asyncio.run(scenario())
    assert {type(o).__name__ for o in outcome} == {"Admission", "RateLimited"}
    refused = [o for o in outcome if isinstance(o, RateLimited)]
    # The fallback's in-flight limit is what refused them; the RPM had room.
    assert all("concurrent requests: Limit 20" in o.message for o in refused)
    assert fallback.fallback_activations() - before >= 60


def test_with_redis_down_the_fallback_holds_requests_in_flight(monkeypatch, settings):
    settings.RELAY_FALLBACK_PROCESSES = 1
    key = key_context(concurrency=2)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    monkeypatch.setattr(pools, "redis", lambda: dead)

    async def scenario():
        held = [await try_admit(key) for _ in range(3)]
        await held[0].release()
        return held, await try_admit(key)

    held, after_release = asyncio.run(scenario())
    assert [type(a).__name__ for a in held] == ["Admission", "Admission", "RateLimited"]
    assert isinstance(after_release, admission.Admission)


# --- addresses -------------------------------------------------------------------------


def test_the_client_address_is_the_peer_unless_the_peer_is_a_trusted_proxy(settings):
    meta = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
    assert client_ip(meta) == "10.1.2.3"
    settings.RELAY_TRUSTED_PROXIES = ["10.0.0.0/8", "192.168.0.0/16"]
    # The hop the trusted proxy saw; whatever the client wrote left of it is ignored.
    assert client_ip(meta) == "203.0.113.9"
    chained = {**meta, "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9, 192.168.1.1"}
    assert client_ip(chained) == "203.0.113.9"
    assert client_ip({"REMOTE_ADDR": "10.1.2.3"}) == "10.1.2.3"
    assert client_ip({**meta, "REMOTE_ADDR": "8.8.8.8"}) == "8.8.8.8"


def test_an_allow_list_admits_only_its_ranges():
    inside = key_context(allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    for address in ("10.9.8.7", "::ffff:10.0.0.1", "2001:db8::1"):
        assert isinstance(asyncio.run(try_admit(inside, ip=address)), admission.Admission)
    for address in ("127.0.0.1", "11.0.0.1", "", "not-an-ip"):
        with pytest.raises(PermissionDenied):
            asyncio.run(try_admit(inside, ip=address))


# --- end to end, through the live relay ------------------------------------------------


def issue(tenant, group, **fields) -> str:
    return ApiKey.issue(tenant=tenant, group=group, name=f"k{next(_ids)}", **fields)[1]


def error_of(response) -> dict:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@uses_live_relay
def test_headers_count_down_as_requests_are_admitted(relay, tenant, group, channel):
    # Warm the relay's caches with another key, so the three requests below
    # follow each other closely and the buckets barely drain between them.
    assert embed(relay, issue(tenant, group), {"model": SMALL, "input": "warm"}).status_code == 200
    secret = issue(tenant, group, limit_rpm=5, limit_tpm=100)
    replies = [embed(relay, secret, {"model": SMALL, "input": "hello world"}) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    headers = [r.headers for r in replies]
    assert [h["x-ratelimit-limit-requests"] for h in headers] == ["5"] * 3
    assert [h["x-ratelimit-remaining-requests"] for h in headers] == ["4", "3", "2"]
    assert [h["x-ratelimit-limit-tokens"] for h in headers] == ["100"] * 3
    # "hello world" is 2 tokens.
    assert [h["x-ratelimit-remaining-tokens"] for h in headers] == ["98", "96", "94"]
    # Reset is when the bucket is empty again: 12 s a request (60 s / 5),
    # 0.6 s a token, less the time gone by since.
    assert headers[0]["x-ratelimit-reset-requests"] == "12s"
    assert headers[0]["x-ratelimit-reset-tokens"] == "1.2s"
    assert 35 < seconds(headers[2]["x-ratelimit-reset-requests"]) <= 36
    assert 3.0 < seconds(headers[2]["x-ratelimit-reset-tokens"]) <= 3.6


@uses_live_relay
def test_the_group_default_applies_unless_the_key_overrides_it(relay, tenant, group, channel):
    group.limit_rpm = 7
    group.save()
    default = issue(tenant, group)
    override = issue(tenant, group, limit_rpm=50)
    assert embed(relay, default, {"model": SMALL, "input": "a"}).headers[
        "x-ratelimit-limit-requests"
    ] == "7"
    reply = embed(relay, override, {"model": SMALL, "input": "a"})
    assert reply.headers["x-ratelimit-limit-requests"] == "50"
    # No token limit anywhere: no token headers rather than invented ones.
    assert "x-ratelimit-limit-tokens" not in reply.headers


@uses_live_relay
def test_a_refused_request_gets_openais_429_and_never_reaches_upstream_or_billing(
    relay, tenant, group, fake_upstream
):
    make_channel(group, fake_upstream.base_url("name=limits-429"))
    secret = issue(tenant, group, limit_rpm=2)
    served = [embed(relay, secret, {"model": SMALL, "input": "hello"}) for _ in range(2)]
    refused = embed(relay, secret, {"model": SMALL, "input": "hello"})
    assert [r.status_code for r in served] == [200, 200]
    assert refused.status_code == 429
    error = error_of(refused)
    assert (error["type"], error["code"], error["param"]) == (
        "requests", "rate_limit_exceeded", None
    )
    assert re.fullmatch(
        rf"Rate limit reached for {SMALL} on requests per min \(RPM\): Limit 2, Used 2, "
        r"Requested 1\. Please try again in (29\.\d+s|30s)\.",
        error["message"],
    ), error["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert 29_000 < int(refused.headers["retry-after-ms"]) <= 30_000
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert fake_upstream.stats("name=limits-429")["requests"] == 2
    wait_until(lambda: len(records()) == 2)
    time.sleep(0.5)  # a third record would have arrived by now
    assert not UsageRecord.objects.filter(request_id=refused.headers["x-request-id"]).exists()
    assert len(records()) == 2


@uses_live_relay
def test_a_tpm_refusal_names_tokens_and_an_oversized_request_is_told_it_never_fits(
    relay, tenant, group, channel
):
    secret = issue(tenant, group, limit_tpm=10)
    assert embed(relay, secret, {"model": SMALL, "input": [[1] * 8]}).status_code == 200
    refused = embed(relay, secret, {"model": SMALL, "input": [[1] * 5]})
    error = error_of(refused)
    assert refused.status_code == 429 and error["type"] == "tokens"
    assert error["message"].startswith(
        f"Rate limit reached for {SMALL} on tokens per min (TPM): Limit 10, Used 8, "
        "Requested 5. Please try again in 1"  # 3 tokens at 6 s each: ~18 s
    )
    never = embed(relay, secret, {"model": SMALL, "input": [[1] * 11]})
    assert never.status_code == 429 and error_of(never)["type"] == "tokens"
    assert "can never succeed" in error_of(never)["message"]
    assert "try again" not in error_of(never)["message"]
    assert never.headers["x-should-retry"] == "false"


@uses_live_relay
def test_a_key_never_has_more_requests_upstream_than_its_in_flight_limit(
    relay, tenant, group, fake_upstream
):
    options = "latency=500,name=limits-inflight"
    make_channel(group, fake_upstream.base_url(options))
    key, secret = ApiKey.issue(tenant=tenant, group=group, name="busy", limit_concurrency=3)
    with ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(
            lambda _: embed(relay, secret, {"model": SMALL, "input": "slow"}), range(12)
        ))
    statuses = sorted(r.status_code for r in replies)
    assert 200 in statuses and 429 in statuses and set(statuses) == {200, 429}
    assert fake_upstream.stats(options)["peak_in_flight"] <= 3
    refused = next(r for r in replies if r.status_code == 429)
    assert "concurrent requests: Limit 3" in error_of(refused)["message"]
    assert error_of(refused)["type"] == "requests"
    # Every slot came back when its request ended.
    assert redis_lib.Redis.from_url(settings.REDIS_URL).zcard(f"rl:k:{key.pk}:slots") == 0


@uses_live_relay
def test_a_client_that_hangs_up_gives_its_in_flight_slot_back(relay, tenant, group, fake_upstream):
    make_channel(group, fake_upstream.base_url("latency=500,name=limits-hangup"))
    secret = issue(tenant, group, limit_concurrency=1)
    with pytest.raises(Exception, match="(?i)timed? ?out"):
        embed(relay, secret, {"model": SMALL, "input": "bye"}, timeout=0.1)
    # Within the upstream's 500 ms the request ends (cancelled or served)
    # and its slot is free: the next one is not refused for 300 s.
    def served() -> bool:
        return embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 200

    wait_until(served, timeout_s=5, interval_s=0.2)


@uses_live_relay
def test_the_openai_sdk_gets_a_rate_limit_error_and_its_retries_wait_it_out(
    relay_server, tenant, group, channel
):
    secret = issue(tenant, group, limit_rpm=60)  # one request a second refills
    base_url = relay_server + "/v1"
    with openai.OpenAI(api_key=secret, base_url=base_url, max_retries=0) as strict:
        for _ in range(70):
            try:
                strict.embeddings.create(model=SMALL, input="ping")
            except openai.RateLimitError as err:
                refused, headers = err, err.response.headers
                if int(headers["retry-after-ms"]) >= 300:
                    break
                time.sleep(int(headers["retry-after-ms"]) / 1000)
        else:
            pytest.fail("a 60 RPM key was never rate limited")
    err = refused
    assert err.status_code == 429 and err.code == "rate_limit_exceeded"
    assert err.type == "requests"
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < int(headers["retry-after"]) <= 60
    began = time.monotonic()
    with openai.OpenAI(api_key=secret, base_url=base_url) as patient:  # 2 retries
        result = patient.embeddings.create(model=SMALL, input="ping")
    assert len(result.data) == 1
    assert time.monotonic() - began > 0.2  # it waited for the refill, as told


@uses_live_relay
def test_an_ip_allow_list_refuses_other_addresses_with_403(relay, tenant, group, channel):
    elsewhere = issue(tenant, group, allowed_ips=["10.0.0.0/8"])
    here = issue(tenant, group, allowed_ips=["127.0.0.1/32"])
    refused = embed(relay, elsewhere, {"model": SMALL, "input": "hi"})
    assert refused.status_code == 403
    error = error_of(refused)
    assert error["code"] == "ip_not_allowed" and "127.0.0.1" in error["message"]
    assert embed(relay, here, {"model": SMALL, "input": "hi"}).status_code == 200


@uses_live_relay
def test_a_flood_of_invalid_keys_from_one_address_gets_429(relay, tenant, group, channel):
    valid = issue(tenant, group)
    limit = settings.RELAY_INVALID_KEY_LIMIT_PER_MIN
    bad = [embed(relay, f"sk-bad-{n:040d}", {"model": SMALL, "input": "x"}) for n in range(limit)]
    assert {r.status_code for r in bad} == {401}
    flooded = embed(relay, "sk-bad-" + "1" * 40, {"model": SMALL, "input": "x"})
    assert flooded.status_code == 429
    error = error_of(flooded)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert error["message"].startswith("Too many requests with invalid API keys from 127.0.0.1.")
    assert 0 < int(flooded.headers["retry-after"]) <= 60
    # A key the relay has not looked up recently is refused before any lookup too.
    time.sleep(0.6)  # past the relay's key cache in tests
    assert embed(relay, valid, {"model": SMALL, "input": "x"}).status_code == 429
    assert relay.get("/v1/models", headers={"Authorization": "Bearer sk-bad"}).status_code == 429
