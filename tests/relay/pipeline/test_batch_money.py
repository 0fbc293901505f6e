"""A split or partly cached request, end to end: a live relay and worker, real
PostgreSQL and Redis. It is billed exactly once, at the right prices (the
full price for what went upstream, the group's cache price for the rest),
and the books agree afterwards, also after calls failed and a worker died.
"""

from __future__ import annotations

import base64
import time
from decimal import Decimal

import numpy as np
import pytest
import redis
from django.conf import settings

from accounts.models import ApiKey, Group, Tenant
from billing import ledger
from billing.models import LedgerEntry, UsageRecord
from billing.pricing import apply_ratio, cost_nanos
from relay.contract import tokens
from relay.devtools.fake_upstream import vector
from relay.models import Channel
from relay.pipeline.embed import CACHE_HITS_HEADER
from tests.helpers import SMALL, SMALL_PRICE_NANOS, embed, make_channel, wait_until
from tests.relay.pipeline.test_money import caught_up, reconciled

server = pytest.mark.django_db(transaction=True)
DIMENSIONS = 8
TEXTS = [f"paragraph number {n} of the report" for n in range(23)]
RELAY_CONFIG_CACHE_TTL_S = 0.5  # as tests/conftest.py's server_env sets it


def texts_tokens(texts: list[str]) -> int:
    return sum(tokens.count_text(text) for text in texts)


def vectors_of(response) -> list[np.ndarray]:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(len(data)))
    return [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data]


def body(texts: list[str]) -> dict:
    return {"model": SMALL, "input": texts, "dimensions": DIMENSIONS, "encoding_format": "base64"}


def the_record(request_id: str) -> UsageRecord:
    return wait_until(lambda: UsageRecord.objects.filter(request_id=request_id).first())


def only_channel(group, fake_upstream, name: str, options: str, **fields):
    """A channel of the group that serves SMALL; the cast's own channel is
    switched off, so every request goes here."""
    Channel.objects.filter(name="main").update(enabled=False)
    channel = make_channel(group, fake_upstream.base_url(options), name=name, models={SMALL: ""})
    Channel.objects.filter(pk=channel.pk).update(**fields)
    return channel


@pytest.fixture
def split_channel(group, fake_upstream, channel):
    """The group's channel takes 5 inputs a call: 23 go as 5 calls."""
    return only_channel(group, fake_upstream, "split", "split", items_per_call=5)


def cache_size() -> int:
    return redis.Redis.from_url(settings.CACHE_REDIS_URL).dbsize()


@pytest.fixture
def cached_group(group):
    group.cache_enabled = True
    group.cache_price_ratio = Decimal("0.25")
    group.save()
    return group


@server
def test_a_split_request_is_billed_once_for_every_calls_tokens(
    relay, tenant, secret, split_channel, fake_upstream, celery_worker
):
    fake_upstream.reset()
    response = embed(relay, secret, body(TEXTS))
    vectors = vectors_of(response)
    for text, found in zip(TEXTS, vectors, strict=True):
        assert np.array_equal(found, np.asarray(vector(text, DIMENSIONS), dtype="<f4"))
    assert fake_upstream.stats("split")["requests"] == 5
    record = the_record(response.headers["x-request-id"])
    billed = texts_tokens(TEXTS)  # what the fake reports for the five calls together
    assert response.json()["usage"] == {"prompt_tokens": billed, "total_tokens": billed}
    assert (record.tokens, record.cached_items, record.cached_tokens) == (billed, 0, 0)
    assert record.cost_nanos == cost_nanos(billed, SMALL_PRICE_NANOS)
    caught_up(tenant)
    debits = LedgerEntry.objects.filter(tenant=tenant, kind=LedgerEntry.Kind.USAGE)
    assert sum(-entry.amount_nanos for entry in debits) == record.cost_nanos
    reconciled()


@server
def test_a_partly_cached_request_pays_the_cache_price_for_its_hits(
    relay, tenant, secret, cached_group, split_channel, fake_upstream, celery_worker
):
    first, second = TEXTS[:10], TEXTS[:10] + TEXTS[10:]
    warmed = embed(relay, secret, body(first))
    assert warmed.headers[CACHE_HITS_HEADER] == "0"
    wait_until(lambda: cache_size() == 10)  # written just after the answer
    fake_upstream.reset()
    response = embed(relay, secret, body(second))
    assert response.headers[CACHE_HITS_HEADER] == "10"
    for text, found in zip(second, vectors_of(response), strict=True):
        assert np.array_equal(found, np.asarray(vector(text, DIMENSIONS), dtype="<f4"))
    # Only the 13 new inputs went upstream, as 3 calls of at most 5.
    assert fake_upstream.stats("split")["requests"] == 3
    record = the_record(response.headers["x-request-id"])
    cached_price = apply_ratio(SMALL_PRICE_NANOS, Decimal("0.25"))
    assert (record.cached_items, record.cached_tokens) == (10, texts_tokens(first))
    assert record.tokens == texts_tokens(TEXTS[10:])
    assert record.cached_price_per_mtok_nanos == cached_price
    assert record.cost_nanos == cost_nanos(
        record.tokens,
        SMALL_PRICE_NANOS,
        cached_tokens=record.cached_tokens,
        cached_price_per_mtok_nanos=cached_price,
    )
    caught_up(tenant)
    reconciled()


@server
def test_a_tenant_never_gets_another_tenants_cached_items_unless_the_group_shares(
    relay, tenant, secret, cached_group, split_channel, celery_worker
):
    embed(relay, secret, body(TEXTS[:4]))
    wait_until(lambda: cache_size() == 4)
    other = Tenant.objects.create(slug="initech", name="Initech")
    ledger.top_up(tenant=other, amount_nanos=10**9, reason="test funds")
    _, other_secret = ApiKey.issue(tenant=other, group=cached_group, name="other")
    assert embed(relay, other_secret, body(TEXTS[:4])).headers[CACHE_HITS_HEADER] == "0"

    Group.objects.filter(pk=cached_group.pk).update(cache_scope=Group.CacheScope.GLOBAL)
    time.sleep(RELAY_CONFIG_CACHE_TTL_S * 2)  # the relay's group cache sees the change
    embed(relay, secret, body(TEXTS[6:9]))
    wait_until(lambda: cache_size() == 4 + 4 + 3)  # each tenant's 4, then 3 shared
    assert embed(relay, other_secret, body(TEXTS[6:9])).headers[CACHE_HITS_HEADER] == "3"
    caught_up(tenant)
    caught_up(other)
    reconciled()


@server
def test_books_agree_after_failed_calls_a_failed_request_and_a_killed_worker(
    relay, tenant, secret, group, channel, fake_upstream, celery_worker
):
    only_channel(group, fake_upstream, "flaky", "fail_if=FLAKY", items_per_call=3)
    make_channel(
        group, fake_upstream.base_url("steady"), name="steady", priority=1, models={SMALL: ""}
    )
    texts = [f"{text} FLAKY" if n % 4 == 0 else text for n, text in enumerate(TEXTS)]
    served = [embed(relay, secret, body(texts)) for _ in range(3)]
    assert all(response.status_code == 200 for response in served)
    celery_worker.kill()
    served += [embed(relay, secret, body(texts[:7])) for _ in range(3)]
    Channel.objects.filter(name="steady").update(enabled=False)
    # FLAKY inputs now find no channel: the whole request fails, none of it billed.
    time.sleep(RELAY_CONFIG_CACHE_TTL_S * 2)
    failed = embed(relay, secret, body(texts))
    assert failed.status_code == 502, failed.text
    assert failed.json()["error"]["type"] == "server_error"
    celery_worker.start()
    ids = [response.headers["x-request-id"] for response in served]
    wait_until(
        lambda: UsageRecord.objects.filter(request_id__in=ids).count() == len(ids), timeout_s=90
    )
    caught_up(tenant)
    assert not UsageRecord.objects.filter(
        request_id=failed.headers["x-request-id"], cost_nanos__gt=0
    ).exists()
    reconciled()
