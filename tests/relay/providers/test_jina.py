"""Jina AI: the embeddings call, its answer, and the fake's dialect."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from relay.providers import PROVIDERS
from relay.providers.base import UnreadableAnswer
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

jina = PROVIDERS["jina"]
BASE = "https://api.jina.ai/v1"


def test_build_sends_the_documented_body_with_a_bearer_key():
    call = jina.build(
        route("jina", BASE, credential="jina_secret"),
        shard(
            "jina-embeddings-v3",
            ["a", "b"],
            dimensions=256,
            encoding_format="base64",
            options={"input_type": "document"},
        ),
    )
    assert call.url == f"{BASE}/embeddings"
    assert call.headers == {
        "Authorization": "Bearer jina_secret",
        "Content-Type": "application/json",
    }
    assert orjson.loads(call.body) == {
        "model": "jina-embeddings-v3",
        "input": ["a", "b"],
        "task": "retrieval.passage",
        "dimensions": 256,
        "embedding_type": "base64",
        "normalized": True,
        "truncate": False,
    }


@pytest.mark.parametrize(
    ("options", "task"),
    [
        ({}, None),
        ({"task": "query"}, "retrieval.query"),
        ({"input_type": "query"}, "retrieval.query"),
        ({"task": "text-matching", "input_type": "query"}, "text-matching"),
        ({"task": "separation"}, "separation"),
    ],
)
def test_task_comes_from_task_or_input_type(options, task):
    body = orjson.loads(
        jina.build(route("jina", BASE), shard("jina-embeddings-v3", ["a"], options=options)).body
    )
    assert body.get("task") == task
    assert body["embedding_type"] == "float"


def test_a_model_without_task_adapters_gets_no_task():
    body = orjson.loads(
        jina.build(
            route("jina", BASE),
            shard("jina-embeddings-v2-base-en", ["a"], options={"task": "query"}),
        ).body
    )
    assert "task" not in body


def test_capabilities_follow_the_documented_limits():
    v3 = jina.capabilities("jina-embeddings-v3")
    assert (v3.items_per_call, v3.tokens_per_item) == (2048, 8192)
    assert v3.dimensions and v3.base64 and v3.options == {"task", "input_type"}
    assert jina.capabilities("jina-embeddings-v4").tokens_per_item == 32_768
    v2 = jina.capabilities("jina-embeddings-v2-base-en")
    assert not v2.dimensions and not v2.options


def test_parse_keeps_base64_as_the_exact_float32_values():
    row = np.asarray([0.1, 0.2, 0.3], dtype="<f4")
    body = orjson.dumps(
        {
            "model": "jina-embeddings-v3",
            "object": "list",
            "usage": {"total_tokens": 4, "prompt_tokens": 4},
            "data": [
                {
                    "object": "embedding",
                    "index": 0,
                    "embedding": base64.b64encode(row.tobytes()).decode(),
                }
            ],
        }
    )
    embedded = jina.parse(body, shard("jina-embeddings-v3", ["a"]), {})
    assert embedded.vectors.tobytes() == row.tobytes()
    assert embedded.tokens == 4


@pytest.mark.parametrize("body", [b"{", b'{"data": []}', b'{"data": [{"embedding": [1]}]}'])
def test_parse_refuses_what_is_not_an_embeddings_answer(body):
    with pytest.raises(UnreadableAnswer):
        jina.parse(body, shard("jina-embeddings-v3", ["a"]), {})


@pytest.mark.parametrize("encoding_format", [None, "base64"])
def test_a_round_trip_through_the_fake_gives_each_text_its_own_vector(
    fake_upstream, encoding_format
):
    texts = [f"chunk {n}" for n in range(50)]
    call = jina.build(
        route("jina", dialect_url(fake_upstream, "jina")),
        shard(
            "jina-embeddings-v3", texts, encoding_format=encoding_format, options={"task": "query"}
        ),
    )
    answer = send(call)
    assert answer.status_code == 200, answer.text
    assert_vectors(
        jina.parse(answer.content, shard("m", texts), answer.headers).vectors, texts, 1024
    )
    fake_upstream.reset()


def test_the_fake_refuses_a_2049th_text_and_a_wrong_key(fake_upstream):
    base = dialect_url(fake_upstream, "jina", "key=jina_right")
    over = send(
        jina.build(
            route("jina", base, credential="jina_right"), shard("jina-embeddings-v3", ["x"] * 2049)
        )
    )
    assert over.status_code == 400 and "at most 2048" in over.json()["detail"]
    wrong = send(
        jina.build(route("jina", base, credential="jina_wrong"), shard("jina-embeddings-v3", ["x"]))
    )
    assert wrong.status_code == 401
