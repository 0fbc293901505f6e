"""Cohere: the v2 embed call, its answer, and the fake's dialect."""

from __future__ import annotations

import orjson
import pytest

from relay.contract.tokens import count_text
from relay.providers import PROVIDERS
from relay.providers.base import UnreadableAnswer
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

cohere = PROVIDERS["cohere"]
BASE = "https://api.cohere.com"


def test_build_sends_the_documented_body_with_a_bearer_key():
    call = cohere.build(
        route("cohere", BASE, credential="co-secret"),
        shard("embed-v4.0", ["a", "b"], dimensions=512, options={"input_type": "query"}),
    )
    assert call.url == f"{BASE}/v2/embed"
    assert call.headers == {"Authorization": "Bearer co-secret", "Content-Type": "application/json"}
    assert orjson.loads(call.body) == {
        "model": "embed-v4.0",
        "texts": ["a", "b"],
        "input_type": "search_query",
        "embedding_types": ["float"],
        "truncate": "NONE",
        "output_dimension": 512,
    }


@pytest.mark.parametrize(
    ("options", "input_type"),
    [
        ({}, "search_document"),  # required by v3+: a default rather than a 400
        ({"input_type": "document"}, "search_document"),
        ({"input_type": "query"}, "search_query"),
        ({"input_type": "clustering"}, "clustering"),
        ({"task": "query"}, "search_document"),  # Cohere takes no ``task``
    ],
)
def test_input_type_is_always_sent(options, input_type):
    body = orjson.loads(
        cohere.build(
            route("cohere", BASE), shard("embed-english-v3.0", ["x"], options=options)
        ).body
    )
    assert body["input_type"] == input_type
    assert "output_dimension" not in body


def test_capabilities_follow_the_documented_limits():
    v4 = cohere.capabilities("embed-v4.0")
    assert v4.items_per_call == 96
    assert v4.dimension_choices == {256, 512, 1024, 1536}
    assert v4.takes_dimensions(1024) and not v4.takes_dimensions(768)
    v3 = cohere.capabilities("embed-multilingual-v3.0")
    assert (v3.items_per_call, v3.tokens_per_item, v3.dimensions) == (96, 512, False)
    assert v4.options == v3.options == {"input_type"}
    assert not v4.base64 and not v4.token_ids


def test_parse_reads_floats_by_type_and_the_billed_tokens():
    body = orjson.dumps(
        {
            "id": "x",
            "embeddings": {"float": [[0.5, 0.25], [-1.0, 0.0]]},
            "texts": ["a", "b"],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 7.0}},
            "response_type": "embeddings_by_type",
        }
    )
    embedded = cohere.parse(body, shard("embed-v4.0", ["a", "b"]), {})
    assert embedded.vectors.tolist() == [[0.5, 0.25], [-1.0, 0.0]]
    assert embedded.tokens == 7


def test_parse_reads_a_plain_list_and_no_meta_as_no_tokens():
    body = b'{"id": "x", "embeddings": [[0.5], [1.0]], "response_type": "embeddings_floats"}'
    embedded = cohere.parse(body, shard("embed-v4.0", ["a", "b"]), {})
    assert embedded.vectors.tolist() == [[0.5], [1.0]]
    assert embedded.tokens is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b'{"embeddings": {"int8": [[1], [2]]}}',  # not the type asked for
        b'{"embeddings": {"float": [[0.5]]}}',  # one vector for two texts
        b'{"meta": {}}',
        b'{"embeddings": {"float": [[0.5], ["x"]]}}',
    ],
)
def test_parse_refuses_what_is_not_an_embed_answer(body):
    with pytest.raises(UnreadableAnswer):
        cohere.parse(body, shard("embed-v4.0", ["a", "b"]), {})


def test_a_round_trip_through_the_fake_gives_each_text_its_own_vector(fake_upstream):
    texts = [f"document {n}" for n in range(96)]
    for dimensions, size in ((None, 1536), (256, 256)):
        call = cohere.build(
            route("cohere", dialect_url(fake_upstream, "cohere")),
            shard("embed-v4.0", texts, dimensions=dimensions),
        )
        answer = send(call)
        assert answer.status_code == 200, answer.text
        embedded = cohere.parse(answer.content, shard("embed-v4.0", texts), answer.headers)
        assert_vectors(embedded.vectors, texts, size)
        assert embedded.tokens == sum(count_text(text) for text in texts)


def test_the_fake_refuses_a_97th_text_the_way_cohere_does(fake_upstream):
    texts = [f"t{n}" for n in range(97)]
    answer = send(
        cohere.build(
            route("cohere", dialect_url(fake_upstream, "cohere")),
            shard("embed-english-v3.0", texts),
        )
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "message": "invalid request: total number of texts must be at most 96 - received 97"
    }


def test_the_fake_checks_the_bearer_key(fake_upstream):
    base = dialect_url(fake_upstream, "cohere", "key=co-right")
    one = shard("embed-english-v3.0", ["x"])
    assert send(cohere.build(route("cohere", base, credential="co-right"), one)).is_success
    wrong = send(cohere.build(route("cohere", base, credential="co-wrong"), one))
    assert (wrong.status_code, wrong.json()) == (401, {"message": "invalid api token"})


def test_without_billed_units_the_tokens_are_none(fake_upstream):
    answer = send(
        cohere.build(
            route("cohere", dialect_url(fake_upstream, "cohere", "usage=none")),
            shard("embed-english-v3.0", ["x"]),
        )
    )
    assert cohere.parse(answer.content, shard("m", ["x"]), answer.headers).tokens is None
