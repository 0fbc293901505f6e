"""Ollama: the native /api/embed call, its answer, and the fake's dialect."""

from __future__ import annotations

import orjson
import pytest

from relay.contract.tokens import count_text
from relay.providers import PROVIDERS
from relay.providers.base import UnreadableAnswer
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

ollama = PROVIDERS["ollama"]
BASE = "http://gpu-box:11434"


def test_build_sends_no_authorization_without_a_credential():
    call = ollama.build(
        route("ollama", BASE, credential=""),
        shard("nomic-embed-text", ["a", "b"], options={"input_type": "query"}),
    )
    assert call.url == f"{BASE}/api/embed"
    assert call.headers == {"Content-Type": "application/json"}
    assert orjson.loads(call.body) == {
        "model": "nomic-embed-text",
        "input": ["a", "b"],
        "truncate": False,
    }


def test_build_sends_a_bearer_for_a_proxy_and_dimensions_when_asked():
    call = ollama.build(
        route("ollama", BASE, credential="proxy-key"),
        shard("qwen3-embedding", ["a"], dimensions=128),
    )
    assert call.headers["Authorization"] == "Bearer proxy-key"
    assert orjson.loads(call.body)["dimensions"] == 128


def test_capabilities_declare_a_call_size_and_nothing_the_model_may_lack():
    caps = ollama.capabilities("anything")
    assert caps.items_per_call == 32
    assert caps.tokens_per_item is None and not caps.dimensions and not caps.base64


def test_parse_reads_the_vectors_and_prompt_eval_count():
    body = b'{"model": "m", "embeddings": [[0.5, 0.5], [1, 0]], "prompt_eval_count": 6}'
    embedded = ollama.parse(body, shard("m", ["a", "b"]), {})
    assert embedded.vectors.tolist() == [[0.5, 0.5], [1.0, 0.0]]
    assert embedded.tokens == 6


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "model not found"}',
        b'{"embedding": [0.5]}',
        b'{"embeddings": [[0.5]]}',
        b"x",
    ],
)
def test_parse_refuses_what_is_not_an_embed_answer(body):
    with pytest.raises(UnreadableAnswer):
        ollama.parse(body, shard("m", ["a", "b"]), {})


def test_a_round_trip_through_the_fake_gives_each_text_its_own_vector(fake_upstream):
    texts = [f"note {n}" for n in range(32)]
    answer = send(
        ollama.build(
            route("ollama", dialect_url(fake_upstream, "ollama"), ""),
            shard("nomic-embed-text", texts),
        )
    )
    assert answer.status_code == 200, answer.text
    embedded = ollama.parse(answer.content, shard("m", texts), answer.headers)
    assert_vectors(embedded.vectors, texts, 768)
    assert embedded.tokens == sum(count_text(text) for text in texts)


def test_an_over_long_text_is_refused_not_cut(fake_upstream):
    answer = send(
        ollama.build(
            route("ollama", dialect_url(fake_upstream, "ollama", "tokens=5")),
            shard("nomic-embed-text", ["one two three four five six seven"]),
        )
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "the input length exceeds the context length"},
    )
