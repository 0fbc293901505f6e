"""Voyage AI: the embeddings call, its answer, and the fake's dialect."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from relay.contract.tokens import count_text
from relay.providers import PROVIDERS
from relay.providers.base import UnreadableAnswer
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

voyage = PROVIDERS["voyage"]
BASE = "https://api.voyageai.com/v1"


def test_build_sends_the_documented_body_with_a_bearer_key():
    call = voyage.build(
        route("voyage", BASE, credential="pa-secret"),
        shard(
            "voyage-3.5",
            ["a", "b"],
            dimensions=512,
            encoding_format="base64",
            options={"input_type": "document", "task": "ignored"},
        ),
    )
    assert call.url == f"{BASE}/embeddings"
    assert call.headers == {"Authorization": "Bearer pa-secret", "Content-Type": "application/json"}
    assert orjson.loads(call.body) == {
        "model": "voyage-3.5",
        "input": ["a", "b"],
        "truncation": False,
        "input_type": "document",
        "output_dimension": 512,
        "output_dtype": "float",
        "encoding_format": "base64",
    }


def test_without_options_input_type_is_left_out_and_floats_are_asked_for():
    body = orjson.loads(voyage.build(route("voyage", BASE), shard("voyage-3.5", ["a"])).body)
    assert body == {
        "model": "voyage-3.5",
        "input": ["a"],
        "truncation": False,
        "output_dtype": "float",
    }


@pytest.mark.parametrize(
    ("model", "tokens_per_call", "sizes"),
    [
        ("voyage-3.5-lite", 1_000_000, {256, 512, 1024, 2048}),
        ("voyage-3.5", 320_000, {256, 512, 1024, 2048}),
        ("voyage-3-large", 120_000, {256, 512, 1024, 2048}),
        ("voyage-code-3", 120_000, {256, 512, 1024, 2048}),
        ("voyage-law-2", 120_000, set()),
    ],
)
def test_capabilities_keep_a_quarter_of_each_documented_token_ceiling_spare(
    model, tokens_per_call, sizes
):
    caps = voyage.capabilities(model)
    assert caps.items_per_call == 1000
    assert caps.tokens_per_call == tokens_per_call * 3 // 4
    assert caps.dimension_choices == sizes and caps.dimensions == bool(sizes)
    assert caps.base64 and caps.options == {"input_type"} and not caps.token_ids


def test_parse_reads_base64_and_floats_by_index_and_total_tokens():
    row = np.asarray([0.5, -2.0], dtype="<f4")
    body = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [1.0, 2.0]},
                {
                    "object": "embedding",
                    "index": 0,
                    "embedding": base64.b64encode(row.tobytes()).decode(),
                },
            ],
            "model": "voyage-3.5",
            "usage": {"total_tokens": 9},
        }
    )
    embedded = voyage.parse(body, shard("voyage-3.5", ["a", "b"]), {})
    assert embedded.vectors.tolist() == [[0.5, -2.0], [1.0, 2.0]]
    assert embedded.tokens == 9


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"detail": "oops"}',
        b'{"data": [{"index": 0, "embedding": "not base64!"}]}',
        b'{"data": [{"index": 0, "embedding": [1.0]}]}',
    ],
)
def test_parse_refuses_what_is_not_an_embeddings_answer(body):
    with pytest.raises(UnreadableAnswer):
        voyage.parse(body, shard("voyage-3.5", ["a", "b"]), {})


@pytest.mark.parametrize("encoding_format", [None, "base64"])
def test_a_round_trip_through_the_fake_gives_each_text_its_own_vector(
    fake_upstream, encoding_format
):
    texts = [f"passage {n}" for n in range(1000)]
    call = voyage.build(
        route("voyage", dialect_url(fake_upstream, "voyage")),
        shard("voyage-3.5", texts, dimensions=256, encoding_format=encoding_format),
    )
    answer = send(call)
    assert answer.status_code == 200, answer.text
    embedded = voyage.parse(answer.content, shard("voyage-3.5", texts), answer.headers)
    assert_vectors(embedded.vectors, texts, 256)
    assert embedded.tokens == sum(count_text(text) for text in texts)


def test_the_fake_refuses_a_batch_over_the_models_token_ceiling(fake_upstream):
    texts = ["word " * 2000] * 61  # about 122,000 tokens: over voyage-3-large's 120K
    answer = send(
        voyage.build(
            route("voyage", dialect_url(fake_upstream, "voyage")), shard("voyage-3-large", texts)
        )
    )
    assert answer.status_code == 400
    assert "The max allowed tokens per submitted batch is 120000" in answer.json()["detail"]
    assert voyage.capabilities("voyage-3-large").tokens_per_call < 61 * count_text(texts[0])


def test_the_fake_refuses_a_1001st_text_and_a_wrong_key(fake_upstream):
    base = dialect_url(fake_upstream, "voyage", "key=pa-right")
    over = send(
        voyage.build(
            route("voyage", base, credential="pa-right"), shard("voyage-3.5", ["x"] * 1001)
        )
    )
    assert over.status_code == 400 and "batch size limit is 1000" in over.json()["detail"]
    wrong = send(
        voyage.build(route("voyage", base, credential="pa-wrong"), shard("voyage-3.5", ["x"]))
    )
    assert wrong.status_code == 401 and "detail" in wrong.json()
