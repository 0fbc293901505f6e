"""The wire contract of /v1/ (shared/CONTRACT.md), over HTTP against the live relay:
what a served request's answer looks like (one embedding per input, in order,
as floats or base64, OpenAI's shape, usage and a request id).
"""

from __future__ import annotations

import pytest

from accounts.models import ApiKey
from relay.contract import tokens
from tests.helpers import LARGE, PROSE, SMALL, embed
from tests.relay.api.helpers import decoded, float32, group_with, vectors

pytestmark = pytest.mark.django_db(transaction=True)


# --- what a successful answer looks like ----------------------------------------


def test_a_string_gets_one_embedding(relay, secret):
    response = embed(relay, secret, {"model": SMALL, "input": "hello world"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["index"] for item in body["data"]] == [0]
    assert len(body["data"][0]["embedding"]) == 1536
    counted = tokens.count_text("hello world")
    assert body["usage"] == {"prompt_tokens": counted, "total_tokens": counted}


def test_a_list_of_strings_gets_one_embedding_each_in_input_order(relay, secret):
    texts = ["first text", "the second one", PROSE, "last"]
    response = embed(relay, secret, {"model": SMALL, "input": texts})
    together = vectors(response)
    assert [item["index"] for item in response.json()["data"]] == [0, 1, 2, 3]
    alone = [vectors(embed(relay, secret, {"model": SMALL, "input": text}))[0] for text in texts]
    assert together == alone
    assert len({tuple(v) for v in together}) == 4
    counted = sum(tokens.count_text(text) for text in texts)
    assert response.json()["usage"] == {"prompt_tokens": counted, "total_tokens": counted}


def test_a_token_array_gets_one_embedding(relay, secret):
    token_ids = tokens.encoding().encode_ordinary("hello world, in tokens")
    response = embed(relay, secret, {"model": SMALL, "input": token_ids})
    assert response.status_code == 200, response.text
    assert [item["index"] for item in response.json()["data"]] == [0]
    assert len(response.json()["data"][0]["embedding"]) == 1536
    assert response.json()["usage"] == {
        "prompt_tokens": len(token_ids),
        "total_tokens": len(token_ids),
    }


def test_a_list_of_token_arrays_gets_one_embedding_each_in_input_order(relay, secret):
    arrays = [[1, 2, 3], [400, 500], [6000, 7000, 8000, 9000]]
    response = embed(relay, secret, {"model": SMALL, "input": arrays})
    together = vectors(response)
    assert [item["index"] for item in response.json()["data"]] == [0, 1, 2]
    alone = [vectors(embed(relay, secret, {"model": SMALL, "input": a}))[0] for a in arrays]
    assert together == alone
    assert response.json()["usage"] == {"prompt_tokens": 9, "total_tokens": 9}


def test_reordered_inputs_get_reordered_embeddings(relay, secret):
    texts = ["alpha", "beta", "gamma"]
    forward = vectors(embed(relay, secret, {"model": SMALL, "input": texts}))
    backward = vectors(embed(relay, secret, {"model": SMALL, "input": texts[::-1]}))
    assert backward == forward[::-1]


def test_endoftext_in_text_is_counted_as_text(relay, secret):
    text = "the end of one document <|endoftext|> and the start of another"
    response = embed(relay, secret, {"model": SMALL, "input": text})
    assert response.status_code == 200, response.text
    expected = len(tokens.encoding().encode_ordinary(text))
    assert response.json()["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


def test_base64_embeddings_decode_to_the_float_answer(relay, secret):
    texts = ["hello world", PROSE]
    as_floats = vectors(embed(relay, secret, {"model": SMALL, "input": texts}))
    response = embed(relay, secret, {"model": SMALL, "input": texts, "encoding_format": "base64"})
    as_base64 = vectors(response)
    assert all(isinstance(item, str) for item in as_base64)
    assert [decoded(item) for item in as_base64] == [float32(v) for v in as_floats]
    assert response.json()["usage"]["prompt_tokens"] == sum(map(tokens.count_text, texts))


def test_base64_is_encoded_by_the_relay_when_the_upstream_sends_floats(
    relay, tenant, fake_upstream
):
    group = group_with("floats-only", [SMALL], fake_upstream.base_url("floats"))
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="floats")
    texts = ["hello world", "second"]
    as_floats = vectors(embed(relay, secret, {"model": SMALL, "input": texts}))
    as_base64 = vectors(
        embed(relay, secret, {"model": SMALL, "input": texts, "encoding_format": "base64"})
    )
    assert all(isinstance(item, str) for item in as_base64)
    assert [decoded(item) for item in as_base64] == [float32(v) for v in as_floats]


def test_dimensions_256_give_256_long_vectors(relay, secret):
    body = {"model": SMALL, "input": ["one", "two"], "dimensions": 256}
    assert [len(v) for v in vectors(embed(relay, secret, body))] == [256, 256]
    as_base64 = vectors(embed(relay, secret, {**body, "encoding_format": "base64"}))
    assert [len(decoded(item)) for item in as_base64] == [256, 256]


def test_the_same_input_gives_the_same_vector(relay, secret):
    body = {"model": SMALL, "input": "a sentence worth embedding twice"}
    assert vectors(embed(relay, secret, body)) == vectors(embed(relay, secret, body))


def test_the_response_has_openais_shape(relay, secret):
    response = embed(relay, secret, {"model": LARGE, "input": ["one", "two"]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list"
    assert body["model"] == LARGE
    for index, item in enumerate(body["data"]):
        assert set(item) == {"object", "index", "embedding"}
        assert item["object"] == "embedding"
        assert item["index"] == index
        assert len(item["embedding"]) == 3072
        assert all(isinstance(x, float) for x in item["embedding"])
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] == 2


def test_the_response_names_the_model_asked_for_when_the_upstream_names_another(
    relay, tenant, fake_upstream
):
    group = group_with("renamed", [SMALL], fake_upstream.base_url("name=provider-model-v2"))
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="renamed")
    response = embed(relay, secret, {"model": SMALL, "input": "hi"})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == SMALL


def test_usage_is_in_the_response_when_the_upstream_leaves_it_out(relay, tenant, fake_upstream):
    group = group_with("no-usage", [SMALL], fake_upstream.base_url("usage=none"))
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="no-usage")
    response = embed(relay, secret, {"model": SMALL, "input": ["hello world", "again"]})
    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_every_response_has_its_own_request_id(relay, secret):
    first = embed(relay, secret, {"model": SMALL, "input": "hi"})
    second = embed(relay, secret, {"model": "no-such-model", "input": "hi"})
    assert first.headers["x-request-id"]
    assert second.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
