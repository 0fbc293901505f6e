"""Rate limits end to end, through the live relay to the fake upstream: the
x-ratelimit-* headers, OpenAI's 429 as clients and the SDK see it, requests in
flight, IP allow-lists and the limit on invalid keys.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from django.conf import settings

from accounts.models import ApiKey
from billing import redis_url
from billing.models import UsageRecord
from relay.limits import rules
from tests.helpers import SMALL, embed, make_channel, records, uses_live_relay, wait_until
from tests.relay.limits.helpers import _ids, seconds

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
    assert (
        embed(relay, default, {"model": SMALL, "input": "a"}).headers["x-ratelimit-limit-requests"]
        == "7"
    )
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
        "requests",
        "rate_limit_exceeded",
        None,
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
        replies = list(
            pool.map(lambda _: embed(relay, secret, {"model": SMALL, "input": "slow"}), range(12))
        )
    statuses = sorted(r.status_code for r in replies)
    assert 200 in statuses and 429 in statuses and set(statuses) == {200, 429}
    assert fake_upstream.stats(options)["peak_in_flight"] <= 3
    refused = next(r for r in replies if r.status_code == 429)
    assert "concurrent requests: Limit 3" in error_of(refused)["message"]
    assert error_of(refused)["type"] == "requests"
    # Every slot came back when its request ended.
    slots = rules.bucket_keys(key.tenant_id, key.pk)[2]
    assert redis_url.client(settings.REDIS_URL).zcard(slots) == 0


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
