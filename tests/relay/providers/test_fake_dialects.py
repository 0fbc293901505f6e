"""The fake upstream's dialect plumbing (relay/devtools/fake_upstream/): the
route options every dialect shares, its stats, and the OpenAI dialect's
options for the batch engine's tests."""

from __future__ import annotations

import time

import httpx
import pytest

from relay.providers import PROVIDERS
from tests.relay.providers.helpers import dialect_url, expected, route, send, shard

MODELS = {
    "gemini": "gemini-embedding-001",
    "cohere": "embed-v4.0",
    "voyage": "voyage-3.5",
    "jina": "jina-embeddings-v3",
    "mistral": "mistral-embed",
    "ollama": "bge-m3",
}


@pytest.mark.parametrize(
    ("kind", "error_key"),
    [
        ("gemini", "error"),
        ("cohere", "message"),
        ("voyage", "detail"),
        ("jina", "detail"),
        ("mistral", "message"),
        ("ollama", "error"),
    ],
)
def test_status_fails_a_dialect_in_its_own_error_shape(fake_upstream, kind, error_key):
    answer = send(
        PROVIDERS[kind].build(
            route(kind, dialect_url(fake_upstream, kind, "status=503")), shard(MODELS[kind], ["x"])
        )
    )
    assert answer.status_code == 503
    assert error_key in answer.json()


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_items_lowers_a_dialects_cap_and_stats_count_per_route(fake_upstream, kind):
    fake_upstream.reset()
    base = dialect_url(fake_upstream, kind, "items=2")
    provider = PROVIDERS[kind]
    if kind != "ollama":  # Ollama has no cap of its own to lower
        assert (
            send(
                provider.build(route(kind, base), shard(MODELS[kind], ["a", "b", "c"]))
            ).status_code
            == 400
        )
    assert send(provider.build(route(kind, base), shard(MODELS[kind], ["a", "b"]))).is_success
    stats = fake_upstream.stats(f"{kind}:items=2")
    assert stats["max_items"] == 2  # the refused call of 3 was never embedded
    assert stats["requests"] == (1 if kind == "ollama" else 2)


def test_latency_delays_a_dialects_answer(fake_upstream):
    call = PROVIDERS["voyage"].build(
        route("voyage", dialect_url(fake_upstream, "voyage", "latency=300")),
        shard("voyage-3.5", ["x"]),
    )
    started = time.monotonic()
    assert send(call).is_success
    assert time.monotonic() - started >= 0.3


def openai_call(fake, options: str, texts: list[str]) -> httpx.Response:
    return httpx.post(
        f"{fake.base_url(options)}/embeddings",
        timeout=10,
        headers={"Authorization": "Bearer sk-x"},
        json={"model": "bge-m3", "input": texts, "dimensions": 4},
    )


def test_openai_reverse_lists_vectors_last_first_each_at_its_index(fake_upstream):
    data = openai_call(fake_upstream, "reverse", ["a", "b", "c"]).json()["data"]
    assert [item["index"] for item in data] == [2, 1, 0]
    assert all(item["embedding"] == expected("abc"[item["index"]], 4).tolist() for item in data)


def test_openai_fail_if_fails_only_calls_with_a_marked_input(fake_upstream):
    assert openai_call(fake_upstream, "fail_if=BAD", ["ok", "also ok"]).status_code == 200
    assert openai_call(fake_upstream, "fail_if=BAD", ["ok", "a BAD one"]).status_code == 503


def test_openai_slow_if_delays_only_calls_with_a_marked_input(fake_upstream):
    started = time.monotonic()
    openai_call(fake_upstream, "slow_if=SLOW", ["quick"])
    quick = time.monotonic() - started
    started = time.monotonic()
    openai_call(fake_upstream, "slow_if=SLOW", ["SLOW one"])
    assert time.monotonic() - started >= 0.2 > quick


def test_openai_stats_keep_the_largest_call(fake_upstream):
    fake_upstream.reset()
    openai_call(fake_upstream, "biggest", ["a", "b", "c"])
    openai_call(fake_upstream, "biggest", ["a"])
    stats = fake_upstream.stats("biggest")
    assert (stats["requests"], stats["max_items"]) == (2, 3)
