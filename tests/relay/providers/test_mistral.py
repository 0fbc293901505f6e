"""Mistral: the embeddings call, its answer, and the fake's dialect."""

from __future__ import annotations

import orjson
import pytest

from relay.contract.tokens import count_text
from relay.providers import PROVIDERS
from relay.providers.base import UnreadableAnswer
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

mistral = PROVIDERS["mistral"]
BASE = "https://api.mistral.ai/v1"


def test_build_sends_output_dimension_and_encoding_format():
    call = mistral.build(
        route("mistral", BASE, credential="m-secret"),
        shard(
            "codestral-embed",
            ["a"],
            dimensions=256,
            encoding_format="base64",
            options={"input_type": "query"},
        ),
    )
    assert call.url == f"{BASE}/embeddings"
    assert call.headers == {"Authorization": "Bearer m-secret", "Content-Type": "application/json"}
    assert orjson.loads(call.body) == {
        "model": "codestral-embed",
        "input": ["a"],
        "output_dimension": 256,
        "encoding_format": "base64",
    }


def test_mistral_embed_takes_no_output_size():
    caps = mistral.capabilities("mistral-embed")
    assert not caps.dimensions and caps.base64 and not caps.options
    assert mistral.capabilities("codestral-embed").takes_dimensions(1024)
    assert (caps.items_per_call, caps.tokens_per_call, caps.tokens_per_item) == (
        128,
        16_384 * 3 // 4,
        8192,
    )
    body = orjson.loads(mistral.build(route("mistral", BASE), shard("mistral-embed", ["a"])).body)
    assert body == {"model": "mistral-embed", "input": ["a"]}


@pytest.mark.parametrize("body", [b"null", b'{"data": "x"}', b'{"object": "error"}'])
def test_parse_refuses_what_is_not_an_embeddings_answer(body):
    with pytest.raises(UnreadableAnswer):
        mistral.parse(body, shard("mistral-embed", ["a"]), {})


@pytest.mark.parametrize("encoding_format", [None, "base64"])
def test_a_round_trip_through_the_fake_gives_each_text_its_own_vector(
    fake_upstream, encoding_format
):
    texts = [f"line {n}" for n in range(128)]
    call = mistral.build(
        route("mistral", dialect_url(fake_upstream, "mistral")),
        shard("mistral-embed", texts, encoding_format=encoding_format),
    )
    answer = send(call)
    assert answer.status_code == 200, answer.text
    embedded = mistral.parse(answer.content, shard("m", texts), answer.headers)
    assert_vectors(embedded.vectors, texts, 1024)
    assert embedded.tokens == sum(count_text(text) for text in texts)


def test_the_fake_refuses_too_many_tokens_the_way_mistral_does(fake_upstream):
    texts = ["token " * 5000] * 4  # about 20,000 tokens in one call
    answer = send(
        mistral.build(
            route("mistral", dialect_url(fake_upstream, "mistral")), shard("mistral-embed", texts)
        )
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "Too many tokens overall, split into more batches."
    assert sum(map(count_text, texts)) > mistral.capabilities("mistral-embed").tokens_per_call


def test_the_fake_refuses_too_many_inputs_and_a_wrong_key(fake_upstream):
    base = dialect_url(fake_upstream, "mistral", "key=m-right,items=3")
    over = send(
        mistral.build(
            route("mistral", base, credential="m-right"),
            shard("mistral-embed", ["a", "b", "c", "d"]),
        )
    )
    assert over.json()["message"] == "Too many inputs in request, split into more batches."
    wrong = send(
        mistral.build(route("mistral", base, credential="m-wrong"), shard("mistral-embed", ["a"]))
    )
    assert wrong.status_code == 401
