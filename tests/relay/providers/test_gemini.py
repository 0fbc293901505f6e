"""Gemini: the batchEmbedContents call, its answer, and the fake's dialect."""

from __future__ import annotations

import orjson
import pytest

from relay.contract.tokens import count_text
from relay.providers import PROVIDERS
from relay.providers.base import UnreadableAnswer
from tests.relay.providers.helpers import assert_vectors, dialect_url, route, send, shard

gemini = PROVIDERS["gemini"]
BASE = "https://generativelanguage.googleapis.com"


def test_build_sends_one_request_per_text_with_the_key_in_a_header_not_the_url():
    call = gemini.build(
        route("gemini", BASE, credential="AIza-secret"),
        shard(
            "gemini-embedding-001",
            ["first", "second"],
            dimensions=768,
            options={"input_type": "query"},
        ),
    )
    assert call.url == f"{BASE}/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert "AIza-secret" not in call.url
    assert call.headers == {"x-goog-api-key": "AIza-secret", "Content-Type": "application/json"}
    assert orjson.loads(call.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "first"}]},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 768,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "second"}]},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 768,
            },
        ]
    }


@pytest.mark.parametrize(
    ("options", "task_type"),
    [
        ({}, None),
        ({"input_type": "document"}, "RETRIEVAL_DOCUMENT"),
        ({"task": "query"}, "RETRIEVAL_QUERY"),
        ({"task": "CLUSTERING", "input_type": "query"}, "CLUSTERING"),  # task wins
        ({"input_type": "SEMANTIC_SIMILARITY"}, "SEMANTIC_SIMILARITY"),
    ],
)
def test_task_type_comes_from_task_or_input_type(options, task_type):
    call = gemini.build(
        route("gemini", BASE), shard("gemini-embedding-001", ["x"], options=options)
    )
    request = orjson.loads(call.body)["requests"][0]
    assert request.get("taskType") == task_type
    assert "outputDimensionality" not in request


def test_a_model_given_as_models_slash_name_is_not_doubled():
    call = gemini.build(route("gemini", BASE), shard("models/text-embedding-004", ["x"]))
    assert call.url.endswith("/v1beta/models/text-embedding-004:batchEmbedContents")
    assert orjson.loads(call.body)["requests"][0]["model"] == "models/text-embedding-004"


def test_capabilities_follow_the_documented_limits():
    caps = gemini.capabilities("gemini-embedding-001")
    assert (caps.items_per_call, caps.tokens_per_item) == (100, 2048)
    assert caps.takes_dimensions(768) and caps.takes_dimensions(3072)
    assert not caps.base64 and not caps.token_ids
    assert caps.options == {"task", "input_type"}
    assert not gemini.capabilities("embedding-001").dimensions
    assert gemini.capabilities("some-future-model").items_per_call == 100


def test_parse_reads_the_vectors_in_order_and_reports_no_tokens():
    body = b'{"embeddings": [{"values": [0.5, -0.25]}, {"values": [1.0, 0.0]}]}'
    embedded = gemini.parse(body, shard("gemini-embedding-001", ["a", "b"]), {})
    assert embedded.vectors.tolist() == [[0.5, -0.25], [1.0, 0.0]]
    assert embedded.tokens is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"embeddings": [{"values": [0.5]}]}',  # one vector for two texts
        b'{"embedding": {"values": [0.5]}}',  # embedContent's shape, not the batch one
        b'{"embeddings": [{"values": "abc"}, {"values": [1]}]}',
        b'{"embeddings": [{"values": [1, 2]}, {"values": [1]}]}',  # ragged
        b"[]",
    ],
)
def test_parse_refuses_what_is_not_a_batch_answer(body):
    with pytest.raises(UnreadableAnswer):
        gemini.parse(body, shard("gemini-embedding-001", ["a", "b"]), {})


def test_a_round_trip_through_the_fake_gives_each_text_its_own_vector(fake_upstream):
    texts = [f"text number {n}" for n in range(100)]
    for dimensions, size in ((None, 3072), (256, 256)):
        call = gemini.build(
            route("gemini", dialect_url(fake_upstream, "gemini")),
            shard("gemini-embedding-001", texts, dimensions=dimensions),
        )
        answer = send(call)
        assert answer.status_code == 200, answer.text
        assert_vectors(
            gemini.parse(answer.content, shard("m", texts), answer.headers).vectors, texts, size
        )


def test_the_fake_refuses_a_101st_request_the_way_gemini_does(fake_upstream):
    texts = [f"t{n}" for n in range(101)]
    answer = send(
        gemini.build(
            route("gemini", dialect_url(fake_upstream, "gemini")),
            shard("gemini-embedding-001", texts),
        )
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "at most 100 requests can be in one batch" in error["message"]


def test_the_fake_checks_the_key(fake_upstream):
    base = dialect_url(fake_upstream, "gemini", "key=AIza-right")
    one = shard("gemini-embedding-001", ["x"])
    assert send(gemini.build(route("gemini", base, credential="AIza-right"), one)).is_success
    wrong = send(gemini.build(route("gemini", base, credential="AIza-wrong"), one))
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    missing = send(gemini.build(route("gemini", base, credential=""), one))
    assert missing.status_code == 403


def test_the_fake_embeds_exactly_the_text_it_received(fake_upstream):
    fake_upstream.reset()
    send(
        gemini.build(
            route("gemini", dialect_url(fake_upstream, "gemini", "ch=g")),
            shard("gemini-embedding-001", ["héllo wörld"], options={"task": "query"}),
        )
    )
    stats = fake_upstream.stats("gemini:ch=g")
    assert stats["last_body"]["requests"][0]["content"]["parts"][0]["text"] == "héllo wörld"
    assert stats["last_body"]["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert stats["last_authorization"] == "sk-test"
    assert count_text("héllo wörld") > 0
