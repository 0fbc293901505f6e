"""The batch engine keeps every vector at its index (relay/pipeline/batch.py).

In process, against the fake upstream over HTTP: its vector of an input is a
hash of exactly the text it received, so ``data[i]`` can be checked against
``input[i]`` for any mix of batch size, call size, cache hits, repeats
inside a batch and calls that fail and go to another channel.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson
import pytest
import redis
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.catalog.routes import ModelRoute
from relay.connections import pools
from relay.contract import tokens
from relay.contract.errors import InvalidRequest, UpstreamFailed
from relay.contract.validation import EmbeddingRequest
from relay.devtools.fake_upstream import vector
from relay.lib.cancellation import finish_background
from relay.pipeline import batch, cache, embed
from relay.pipeline.trace import Trace
from relay.providers.base import ChannelRoute

MODEL = "bge-m3"  # an OpenAI-compatible server's model: it takes any dimensions
DIMENSIONS = 8  # small vectors keep 2,048-item examples cheap


def channel(
    fake,
    options: str = "",
    *,
    channel_id: int = 1,
    priority: int = 0,
    items_per_call: int | None = None,
    truncatable: bool = False,
) -> ChannelRoute:
    return ChannelRoute(
        channel_id=channel_id,
        name=f"c{channel_id}",
        kind="openai",
        base_url=fake.base_url(options),
        credential="sk-fake",
        priority=priority,
        weight=1,
        upstream_model=MODEL,
        items_per_call=items_per_call,
        truncatable=truncatable,
    )


def request_for(
    items: list, *, dimensions: int | None = DIMENSIONS, encoding_format: str | None = "base64"
) -> EmbeddingRequest:
    counts = [tokens.count_text(i) if isinstance(i, str) else len(i) for i in items]
    return EmbeddingRequest(
        model=MODEL,
        input=[list(i) if isinstance(i, tuple) else i for i in items],
        encoding_format=encoding_format,
        dimensions=dimensions,
        token_counts=counts,
    )


def forward(
    request: EmbeddingRequest, channels: list[ChannelRoute], *, cache_namespace: str | None = None
):
    """``embed.forward`` on a loop of its own, as a web process runs it."""
    route = ModelRoute(model=MODEL, price_per_mtok_nanos=1, channels=tuple(channels))

    async def main():
        try:
            return await embed.forward(
                route, request, Trace(request_id="req_batch"), cache_namespace=cache_namespace
            )
        finally:
            await finish_background()  # the cache's writes
            await pools.http().close()
            await pools.close_cache()

    with ThreadPoolExecutor(1) as loop_thread:
        reply, _channel = loop_thread.submit(asyncio.run, main()).result()
    return reply


def answer_of(reply, request: EmbeddingRequest) -> bytes:
    """The answer's bytes, merged by the engine or passed through."""
    if isinstance(reply, batch.Merged):
        return reply.answer(request)
    return reply.body


def expected(item, dimensions: int = DIMENSIONS) -> np.ndarray:
    """The fake's vector of what it received: the text, or OpenAI's token ids as JSON."""
    text = item if isinstance(item, str) else orjson.dumps(list(item)).decode()
    return np.asarray(vector(text, dimensions), dtype="<f4")


def assert_each_at_its_index(reply, request: EmbeddingRequest) -> None:
    items = request.items
    if isinstance(reply, batch.Merged):
        assert len(reply.vectors) == len(items)
        for position, item in enumerate(items):
            vector = np.frombuffer(reply.vectors[position], dtype="<f4")  # array or bytes
            assert np.array_equal(vector, expected(item)), position
    answer = orjson.loads(answer_of(reply, request))
    assert [entry["index"] for entry in answer["data"]] == list(range(len(items)))
    for position, entry in enumerate(answer["data"]):
        raw = base64.b64decode(entry["embedding"])
        assert np.array_equal(np.frombuffer(raw, dtype="<f4"), expected(items[position]))


def flush_cache() -> None:
    redis.Redis.from_url(django_settings.CACHE_REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def empty_cache():
    flush_cache()


# --- the property ----------------------------------------------------------------


@st.composite
def batches(draw):
    vocabulary = draw(st.integers(1, 80))
    # Mostly small batches, some up to OpenAI's 2,048 inputs.
    size = draw(st.one_of(st.integers(1, 40), st.integers(41, 2048)))
    picks = draw(st.lists(st.integers(0, vocabulary), min_size=size, max_size=size))
    flaky = draw(st.sets(st.integers(0, vocabulary), max_size=3))
    items = [f"item {p}" + (" FLAKY" if p in flaky else "") for p in picks]
    # At most 32 calls an example, so that 2,048 items stay quick.
    per_call = max(draw(st.integers(1, 400)), -(-size // 32))
    other_per_call = max(draw(st.integers(1, 400)), -(-size // 32))
    warm = draw(st.lists(st.integers(0, size - 1), max_size=min(size, 300), unique=True))
    return items, per_call, other_per_call, draw(st.booleans()), warm


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_vector_is_at_its_index_whatever_the_split_cache_repeats_and_failures(
    fake_upstream, example
):
    items, per_call, other_per_call, cached, warm = example
    flush_cache()  # each example starts cold: the cache outlives an example
    # Calls with a FLAKY item fail on the first channel and go to the second,
    # split again for its own call size.
    channels = [
        channel(fake_upstream, "fail_if=FLAKY", channel_id=1, items_per_call=per_call),
        channel(fake_upstream, "", channel_id=2, priority=1, items_per_call=other_per_call),
    ]
    namespace = "t1" if cached else None
    if cached and warm:
        forward(request_for([items[p] for p in warm]), channels, cache_namespace=namespace)
    request = request_for(items)
    merged = forward(request, channels, cache_namespace=namespace)
    assert_each_at_its_index(merged, request)
    if cached:
        assert isinstance(merged, batch.Merged)  # a cached group always takes the engine
        hits = {items[p] for p in warm}
        first_seen: set = set()
        repeats = 0
        for item in items:
            repeats += item in first_seen and item not in hits
            first_seen.add(item)
        assert merged.cached_items == sum(item in hits for item in items) + repeats


# --- LiteLLM's two bugs --------------------------------------------------------------


def test_litellm_29284_cached_and_uncached_items_mixed_each_vector_at_its_own_index(
    fake_upstream,
):
    """LiteLLM returned one input's vector at another's index, with duplicate
    indexes, when a batch mixed cached and uncached items."""
    items = [f"sentence {n}" for n in range(40)]
    channels = [channel(fake_upstream, items_per_call=7)]
    forward(request_for(items[1::2]), channels, cache_namespace="t1")  # every odd one cached
    request = request_for(items)
    merged = forward(request, channels, cache_namespace="t1")
    assert merged.cached_items == 20
    assert_each_at_its_index(merged, request)


def test_litellm_2990_vectors_come_back_in_input_order_whatever_order_calls_end(
    fake_upstream,
):
    """LiteLLM reordered the results of a batch; here the first call is the
    slowest and its upstream lists its vectors backwards (each with its index)."""
    items = ["SLOW first"] + [f"quick {n}" for n in range(30)]
    channels = [channel(fake_upstream, "slow_if=SLOW,reverse", items_per_call=4)]
    request = request_for(items)
    merged = forward(request, channels)
    assert_each_at_its_index(merged, request)


# --- the cache's entries ----------------------------------------------------------


def test_each_cached_item_keeps_its_token_count_beside_its_vector(fake_upstream):
    """So that a request answered from the cache is counted without a
    tokenizer pass (relay/pipeline/embed.py asks ``look_up`` first)."""
    items = [f"sentence {n}" for n in range(30)] + ["sentence 3"]
    channels = (channel(fake_upstream, items_per_call=7),)
    forward(request_for(items[:20]), list(channels), cache_namespace="t1")
    uncounted = dataclasses.replace(request_for(items), token_counts=[])

    async def look_up():
        try:
            return await batch.look_up(channels, uncounted, cache_namespace="t1")
        finally:
            await pools.close_cache()

    found = asyncio.run(look_up())
    known = found.known_tokens()
    assert known == {p: tokens.count_text(items[p]) for p in [*range(20), 30]}
    for position in known:
        vector = np.frombuffer(found.vectors[position], dtype="<f4")
        assert np.array_equal(vector, expected(items[position]))
    assert found.vectors[20:30] == [None] * 10


def test_a_value_that_is_not_a_count_and_a_vector_is_a_miss():
    keys = [f"{cache.KEY_PREFIX}test-{n}" for n in range(5)]
    values = {
        keys[0]: b"",
        keys[1]: b"\x01\x00\x00\x00",  # a count, no vector
        keys[2]: b"\x01\x00\x00\x00\x00\x00",  # not whole float32s
        keys[3]: cache.encode(5, np.ones(3, dtype="<f4")),
    }  # keys[4]: nothing
    redis.Redis.from_url(django_settings.CACHE_REDIS_URL).mset(values)

    async def look_up():
        try:
            return await cache.lookup(keys)
        finally:
            await pools.close_cache()

    vectors, counts = asyncio.run(look_up())
    assert vectors[:3] == [None] * 3 and vectors[4] is None
    assert np.frombuffer(vectors[3], dtype="<f4").tolist() == [1.0, 1.0, 1.0]
    assert counts == [0, 0, 0, 5, 0]


def test_a_cache_that_cannot_be_reached_makes_every_item_a_miss(fake_upstream, settings):
    settings.CACHE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    request = request_for([f"sentence {n}" for n in range(12)])
    merged = forward(request, [channel(fake_upstream, items_per_call=5)], cache_namespace="t1")
    assert merged.cached_items == 0
    assert_each_at_its_index(merged, request)


# --- splitting and failing --------------------------------------------------------------


def test_a_batch_is_split_into_calls_that_fit_the_channel(fake_upstream):
    fake_upstream.reset()
    items = [f"text {n}" for n in range(2048)]
    merged = forward(request_for(items), [channel(fake_upstream, "count", items_per_call=96)])
    stats = fake_upstream.stats("count")
    assert stats["requests"] == 22  # 21 calls of 96 and one of 32
    assert stats["max_items"] == 96
    assert len(merged.vectors) == 2048


def test_calls_of_one_request_in_flight_are_bounded(fake_upstream, settings):
    settings.RELAY_SHARD_CONCURRENCY = 3
    fake_upstream.reset()
    items = [f"text {n}" for n in range(40)]
    forward(request_for(items), [channel(fake_upstream, "latency=30,bounded", items_per_call=2)])
    stats = fake_upstream.stats("latency=30,bounded")
    assert stats["requests"] == 20
    assert stats["peak_in_flight"] == 3


def test_when_one_call_finds_no_channel_the_whole_request_fails(fake_upstream):
    items = [f"text {n}" for n in range(20)] + ["FLAKY one"]
    with pytest.raises(UpstreamFailed):
        forward(request_for(items), [channel(fake_upstream, "fail_if=FLAKY", items_per_call=5)])


@pytest.fixture
def openai_dialect_without(monkeypatch):
    """The OpenAI dialect as if it lacked some capabilities."""
    from relay.providers import openai

    def without(**lacking):
        monkeypatch.setattr(
            openai, "CAPABILITIES", dataclasses.replace(openai.CAPABILITIES, **lacking)
        )

    return without


def test_token_ids_go_as_text_to_a_provider_that_takes_none(fake_upstream, openai_dialect_without):
    openai_dialect_without(token_ids=False)
    ids = tuple(tokens.encoding().encode_ordinary("hello world"))
    request = request_for([ids, "plain text"])
    merged = forward(request, [channel(fake_upstream)])
    assert np.array_equal(merged.vectors[0], expected("hello world"))
    assert np.array_equal(merged.vectors[1], expected("plain text"))


def test_token_ids_go_as_ids_to_a_provider_that_takes_them(fake_upstream):
    ids = tuple(tokens.encoding().encode_ordinary("hello world"))
    merged = forward(request_for([ids, "plain text"]), [channel(fake_upstream, items_per_call=1)])
    assert np.array_equal(merged.vectors[0], expected(ids))


# --- dimensions ---------------------------------------------------------------------------


def test_a_truncatable_model_without_a_dimensions_parameter_is_cut_and_renormalised(
    fake_upstream, openai_dialect_without
):
    openai_dialect_without(dimensions=False)
    merged = forward(
        request_for(["some words"], dimensions=4), [channel(fake_upstream, truncatable=True)]
    )
    # Nothing asked of the provider: its native 1,536 numbers, cut to 4.
    native = expected("some words", 1536)[:4].astype(np.float64)
    assert merged.vectors[0].shape == (4,)
    assert np.isclose(np.linalg.norm(merged.vectors[0].astype(np.float64)), 1.0, atol=1e-6)
    assert np.allclose(merged.vectors[0], native / np.linalg.norm(native), atol=1e-6)


def test_dimensions_no_channel_can_give_are_openais_400(fake_upstream, openai_dialect_without):
    openai_dialect_without(dimensions=False)
    with pytest.raises(InvalidRequest) as refused:
        forward(request_for(["words"], dimensions=4), [channel(fake_upstream)])
    assert refused.value.param == "dimensions"
    assert refused.value.message == "This model does not support specifying dimensions."


def test_dimensions_past_the_models_own_size_are_a_400(fake_upstream, openai_dialect_without):
    openai_dialect_without(dimensions=False)
    with pytest.raises(InvalidRequest) as refused:
        forward(request_for(["words"], dimensions=2000), [channel(fake_upstream, truncatable=True)])
    assert refused.value.param == "dimensions"
    assert "at most 1536" in refused.value.message
