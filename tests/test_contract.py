"""The wire contract of /v1/ (shared/CONTRACT.md), over HTTP against the live relay.

Every refusal is checked the way a client sees it: the status, OpenAI's
four-key envelope, a JSON content type, an ``x-request-id``, and no request
sent to the upstream.
"""

from __future__ import annotations

import base64
import struct
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from accounts.models import ApiKey, Group, GroupModel
from relay.contract import tokens
from tests.conftest import SMALL, embed, make_channel, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LARGE = "text-embedding-3-large"
ADA = "text-embedding-ada-002"
GROUP_MODELS = [LARGE, SMALL, ADA]

PROSE = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a "
    "brass lantern and a notebook in which he recorded the weather, the ships that passed, "
    "and the occasional whale that surfaced near the rocks. Over forty years he filled "
    "more than two hundred notebooks, and when the light was finally automated the "
    "harbour museum asked to keep them, because no other record described the coast so "
    "patiently or so well."
)
# Real text of more than 8192 cl100k tokens.
LONG_TEXT = " ".join([PROSE] * 120)
UNKNOWN_SECRET = "sk-abQ7rT2mVx9LpW4nZc8KdY3hJf6GsB1ewxyz"


@pytest.fixture
def upstream(fake_upstream):
    """The fake upstream with its counters cleared, for tests that count."""
    fake_upstream.reset()
    return fake_upstream


def upstream_requests(fake) -> int:
    """Requests the fake upstream received, over every channel route."""
    stats = httpx.get(f"{fake.url}/_stats").json()
    return sum(route["requests"] for route in stats.values())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def enveloped(response: httpx.Response, status: int) -> dict:
    """The error of an OpenAI envelope, after checking what every error must carry."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def refused(response: httpx.Response, status: int, fake) -> dict:
    """An error envelope for a request the upstream never saw."""
    error = enveloped(response, status)
    assert upstream_requests(fake) == 0, "a refused request reached the upstream"
    return error


def vectors(response: httpx.Response) -> list:
    assert response.status_code == 200, response.text
    return [item["embedding"] for item in response.json()["data"]]


def float32(values) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def decoded(item: str) -> list[float]:
    raw = base64.b64decode(item, validate=True)
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def group_with(name: str, models: list[str], base_url: str) -> Group:
    """Another group with its own models (priced on the group) and a channel."""
    group = Group.objects.create(name=name)
    for model in models:
        GroupModel.objects.create(group=group, model=model, price_per_mtok_nanos=50_000_000)
    make_channel(group, base_url, name=f"{name}-channel", models=dict.fromkeys(models, ""))
    return group


# --- authentication -------------------------------------------------------------


def test_a_request_without_authorization_gets_401(relay, secret, upstream):
    error = refused(embed(relay, None, {"model": SMALL, "input": "hi"}), 401, upstream)
    assert error["message"].startswith("You didn't provide an API key")
    assert error["type"] == "invalid_request_error"
    assert error["code"] is None


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNzd29yZA==", "Token {secret}", "{secret}", "Bearer", "bearer"],
    ids=["basic", "token-scheme", "bare-key", "bearer-alone", "lower-case-bearer-alone"],
)
def test_a_non_bearer_authorization_gets_401(relay, secret, upstream, authorization):
    response = relay.post(
        "/v1/embeddings",
        json={"model": SMALL, "input": "hi"},
        headers={"Authorization": authorization.format(secret=secret)},
    )
    error = refused(response, 401, upstream)
    assert error["message"].startswith("You didn't provide an API key")
    assert error["code"] is None
    assert secret not in response.text


def test_an_unknown_key_gets_401_with_the_key_masked(relay, secret, upstream):
    response = embed(relay, UNKNOWN_SECRET, {"model": SMALL, "input": "hi"})
    error = refused(response, 401, upstream)
    assert error["message"].startswith("Incorrect API key provided: sk-ab***...wxyz.")
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert UNKNOWN_SECRET not in response.text
    assert UNKNOWN_SECRET[5:-4] not in response.text


def test_a_revoked_key_gets_401_within_seconds(relay, api_key, upstream):
    key, secret = api_key
    assert embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 200
    key.revoke()

    wait_until(
        lambda: embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 401,
        timeout_s=5,
    )
    upstream.reset()
    response = embed(relay, secret, {"model": SMALL, "input": "hi"})
    error = refused(response, 401, upstream)
    assert error["code"] == "invalid_api_key"
    assert f"{secret[:5]}***...{secret[-4:]}" in error["message"]
    assert secret not in response.text


def test_an_expired_key_gets_401(relay, tenant, group, channel, upstream):
    _key, secret = ApiKey.issue(
        tenant=tenant, group=group, name="old", expires=timezone.now() - timedelta(minutes=1)
    )
    response = embed(relay, secret, {"model": SMALL, "input": "hi"})
    error = refused(response, 401, upstream)
    assert error["code"] == "invalid_api_key"
    assert secret not in response.text


def test_a_key_that_expires_while_in_use_gets_401(relay, tenant, group, channel, upstream):
    _key, secret = ApiKey.issue(
        tenant=tenant, group=group, name="brief", expires=timezone.now() + timedelta(seconds=1)
    )
    assert embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 200
    wait_until(
        lambda: embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 401,
        timeout_s=5,
    )
    upstream.reset()
    error = refused(embed(relay, secret, {"model": SMALL, "input": "hi"}), 401, upstream)
    assert error["code"] == "invalid_api_key"


# --- the body -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b'{"model": "text-embedding-3-small",', b"\xff\xfe{}"],
    ids=["text", "empty", "truncated", "not-utf8"],
)
def test_a_body_that_is_not_json_gets_400(relay, secret, upstream, body):
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"text-embedding-3-small"', b"42", b"null",
     b'[{"model": "text-embedding-3-small", "input": "hi"}]'],
    ids=["array", "string", "number", "null", "array-of-object"],
)
def test_json_that_is_not_an_object_gets_400(relay, secret, upstream, body):
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"].startswith("We could not parse the JSON body of your request.")


@pytest.mark.parametrize(
    "body",
    [{"input": "hi"}, {"model": None, "input": "hi"}, {"model": "", "input": "hi"}],
    ids=["absent", "null", "empty"],
)
def test_a_missing_model_gets_400(relay, secret, upstream, body):
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"] == "you must provide a model parameter"
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body", [{"model": SMALL}, {"model": SMALL, "input": None}], ids=["absent", "null"]
)
def test_a_missing_input_gets_400(relay, secret, upstream, body):
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"] == "Missing required parameter: 'input'."
    assert error["param"] == "input"
    assert error["code"] == "missing_required_parameter"


INVALID_INPUTS = {
    "empty-string": "",
    "empty-list": [],
    "number": 42,
    "float": 1.5,
    "object": {"text": "hi"},
    "boolean": True,
    "list-of-mixed": ["hello", 1],
    "list-of-mixed-token-first": [1, "hello"],
    "list-with-empty-string": ["hello", ""],
    "nested-empty-list": [[1, 2], []],
    "only-nested-empty-list": [[]],
    "list-of-booleans": [True, False],
    "token-array-with-boolean": [[1, True]],
    "negative-token": [-5],
    "list-with-null": ["hello", None],
    "list-of-lists-of-strings": [["hello"]],
}


@pytest.mark.parametrize("value", list(INVALID_INPUTS.values()), ids=list(INVALID_INPUTS))
def test_an_invalid_input_gets_400(relay, secret, upstream, value):
    error = refused(embed(relay, secret, {"model": SMALL, "input": value}), 400, upstream)
    assert error["message"].startswith("'$.input' is invalid.")
    assert error["param"] == "input"
    assert error["type"] == "invalid_request_error"


def test_more_than_2048_inputs_get_400(relay, secret, upstream):
    body = {"model": SMALL, "input": [f"item {i}" for i in range(2049)]}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"].startswith("'$.input' is invalid.")
    assert error["param"] == "input"


def test_2048_inputs_are_served_in_order(relay, secret):
    inputs = [f"item {i}" for i in range(2048)]
    response = embed(relay, secret, {"model": SMALL, "input": inputs, "dimensions": 4})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(2048))
    assert all(len(item["embedding"]) == 4 for item in data)


def test_an_item_over_8192_tokens_gets_400_naming_its_index(relay, secret, upstream):
    assert tokens.count_text(LONG_TEXT) > 8192
    body = {"model": SMALL, "input": ["first", "second", "third", LONG_TEXT]}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"] == "Invalid 'input[3]': maximum input length is 8192 tokens."
    assert error["param"] == "input[3]"


def test_a_token_array_item_over_8192_tokens_gets_400_naming_its_index(relay, secret, upstream):
    body = {"model": SMALL, "input": [[1, 2], [3], [4, 5], [6] * 8193]}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"] == "Invalid 'input[3]': maximum input length is 8192 tokens."
    assert error["param"] == "input[3]"


def test_a_single_text_over_8192_tokens_gets_400(relay, secret, upstream):
    error = refused(embed(relay, secret, {"model": SMALL, "input": LONG_TEXT}), 400, upstream)
    assert error["message"] == "Invalid 'input': maximum input length is 8192 tokens."
    assert error["param"] == "input"


def test_a_single_token_array_over_8192_tokens_gets_400(relay, secret, upstream):
    error = refused(embed(relay, secret, {"model": SMALL, "input": [9] * 8193}), 400, upstream)
    assert error["message"] == "Invalid 'input': maximum input length is 8192 tokens."
    assert error["param"] == "input"


def test_a_token_array_of_8192_tokens_is_one_embedding(relay, secret):
    response = embed(relay, secret, {"model": SMALL, "input": [9] * 8192})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1
    assert response.json()["usage"] == {"prompt_tokens": 8192, "total_tokens": 8192}


def test_items_of_exactly_8192_tokens_are_served(relay, secret):
    response = embed(relay, secret, {"model": SMALL, "input": [[9] * 8192, [10] * 8192]})
    assert len(vectors(response)) == 2
    assert response.json()["usage"]["prompt_tokens"] == 16384


def test_over_300000_tokens_in_all_gets_400_with_the_count(relay, secret, upstream):
    body = {"model": SMALL, "input": [[11] * 8000 for _ in range(40)]}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"] == "Requested 320000 tokens, max 300000 tokens per request"
    assert error["code"] == "max_tokens_per_request"
    assert error["type"] == "invalid_request_error"


def test_texts_over_300000_tokens_in_all_get_400_with_their_count(relay, secret, upstream):
    item = " ".join([PROSE] * 95)
    per_item = tokens.count_text(item)
    assert 7000 < per_item <= 8192
    error = refused(embed(relay, secret, {"model": SMALL, "input": [item] * 40}), 400, upstream)
    assert error["message"] == f"Requested {40 * per_item} tokens, max 300000 tokens per request"
    assert error["code"] == "max_tokens_per_request"


def test_exactly_300000_tokens_are_served(relay, secret):
    inputs = [[11] * 8000 for _ in range(37)] + [[12] * 4000]
    response = embed(relay, secret, {"model": SMALL, "input": inputs, "dimensions": 4})
    assert len(vectors(response)) == 38
    assert response.json()["usage"]["prompt_tokens"] == 300_000


def test_dimensions_on_ada_002_get_400(relay, secret, upstream):
    body = {"model": ADA, "input": "hi", "dimensions": 256}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["message"] == "This model does not support specifying dimensions."
    assert error["param"] == "dimensions"


@pytest.mark.parametrize("dimensions", [0, -1, "8", 1.5, True, 1537],
                         ids=["zero", "negative", "string", "float", "boolean", "above-1536"])
def test_a_bad_dimensions_value_gets_400(relay, secret, upstream, dimensions):
    body = {"model": SMALL, "input": "hi", "dimensions": dimensions}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["param"] == "dimensions"
    assert "'dimensions'" in error["message"]
    assert "between 1 and 1536" in error["message"]


def test_dimensions_above_3072_on_3_large_get_400(relay, secret, upstream):
    body = {"model": LARGE, "input": "hi", "dimensions": 3073}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["param"] == "dimensions"
    assert "between 1 and 3072" in error["message"]


@pytest.mark.parametrize("encoding_format", ["json", "FLOAT", "", 1],
                         ids=["json", "upper-case", "empty", "number"])
def test_a_bad_encoding_format_gets_400(relay, secret, upstream, encoding_format):
    body = {"model": SMALL, "input": "hi", "encoding_format": encoding_format}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["param"] == "encoding_format"
    assert "'encoding_format'" in error["message"]
    assert "'float'" in error["message"] and "'base64'" in error["message"]


def test_a_user_that_is_not_a_string_gets_400(relay, secret, upstream):
    body = {"model": SMALL, "input": "hi", "user": 42}
    assert refused(embed(relay, secret, body), 400, upstream)["param"] == "user"


# --- models a key may not use ----------------------------------------------------


def test_an_unknown_model_gets_404(relay, secret, upstream):
    body = {"model": "no-such-model", "input": "hi"}
    error = refused(embed(relay, secret, body), 404, upstream)
    assert error["message"] == (
        "The model `no-such-model` does not exist or you do not have access to it."
    )
    assert error["code"] == "model_not_found"
    assert error["type"] == "invalid_request_error"


def test_a_model_of_another_group_gets_404(relay, secret, fake_upstream, upstream):
    group_with("premium", ["bge-m3"], fake_upstream.base_url())
    error = refused(embed(relay, secret, {"model": "bge-m3", "input": "hi"}), 404, upstream)
    assert error["message"] == "The model `bge-m3` does not exist or you do not have access to it."
    assert error["code"] == "model_not_found"


def test_a_model_outside_the_keys_allow_list_gets_404(relay, tenant, group, channel, upstream):
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="small-only",
                                allowed_models=[SMALL])
    error = refused(embed(relay, secret, {"model": LARGE, "input": "hi"}), 404, upstream)
    assert error["message"] == (
        f"The model `{LARGE}` does not exist or you do not have access to it."
    )
    assert error["code"] == "model_not_found"
    assert embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 200


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
    assert response.json()["usage"] == {"prompt_tokens": len(token_ids),
                                        "total_tokens": len(token_ids)}


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
    response = embed(relay, secret, {"model": SMALL, "input": texts,
                                     "encoding_format": "base64"})
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
    as_base64 = vectors(embed(relay, secret, {"model": SMALL, "input": texts,
                                              "encoding_format": "base64"}))
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


# --- /v1/models ---------------------------------------------------------------------


def test_models_lists_the_keys_group_models_in_openai_shape(relay, secret, fake_upstream):
    group_with("premium", ["bge-m3"], fake_upstream.base_url())
    response = relay.get("/v1/models", headers=bearer(secret))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["object"] == "list"
    assert sorted(item["id"] for item in body["data"]) == sorted(GROUP_MODELS)
    for item in body["data"]:
        assert item["object"] == "model"
        assert isinstance(item["created"], int)
        assert isinstance(item["owned_by"], str)


def test_models_are_filtered_by_the_keys_allow_list(relay, tenant, group, channel, fake_upstream):
    group_with("premium", ["bge-m3"], fake_upstream.base_url())
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="limited",
                                allowed_models=[SMALL, ADA, "bge-m3"])
    response = relay.get("/v1/models", headers=bearer(secret))
    assert response.status_code == 200, response.text
    assert sorted(item["id"] for item in response.json()["data"]) == [SMALL, ADA]


def test_one_model_can_be_fetched(relay, secret):
    response = relay.get(f"/v1/models/{SMALL}", headers=bearer(secret))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == SMALL
    assert body["object"] == "model"
    assert isinstance(body["created"], int)
    assert isinstance(body["owned_by"], str)


@pytest.mark.parametrize("model", ["no-such-model", "bge-m3", LARGE],
                         ids=["unknown", "other-group", "outside-allow-list"])
def test_a_model_the_key_may_not_use_gets_404_from_models(
    relay, tenant, group, channel, fake_upstream, model
):
    group_with("premium", ["bge-m3"], fake_upstream.base_url())
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="limited",
                                allowed_models=[SMALL])
    error = enveloped(relay.get(f"/v1/models/{model}", headers=bearer(secret)), 404)
    assert error["code"] == "model_not_found"
    assert error["message"] == (
        f"The model `{model}` does not exist or you do not have access to it."
    )


def test_a_model_id_with_a_slash_can_be_fetched(relay, tenant, fake_upstream):
    group = group_with("hf", ["BAAI/bge-m3"], fake_upstream.base_url())
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="hf")
    assert embed(relay, secret, {"model": "BAAI/bge-m3", "input": "hi"}).status_code == 200
    response = relay.get("/v1/models/BAAI/bge-m3", headers=bearer(secret))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "BAAI/bge-m3"


@pytest.mark.parametrize("path", ["/v1/models", f"/v1/models/{SMALL}"])
def test_models_without_a_key_gets_401(relay, secret, path):
    error = enveloped(relay.get(path), 401)
    assert error["message"].startswith("You didn't provide an API key")
    assert error["code"] is None


def test_models_with_an_unknown_key_gets_401(relay, secret):
    error = enveloped(relay.get("/v1/models", headers=bearer(UNKNOWN_SECRET)), 401)
    assert error["code"] == "invalid_api_key"


# --- other paths and methods --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/nothing"), ("GET", "/v1/nothing"), ("POST", "/v1/embeddings/extra"),
     ("POST", "/v1/chat/completions")],
)
def test_an_unknown_v1_path_gets_404_in_the_envelope(relay, secret, upstream, method, path):
    response = relay.request(method, path, json={"model": SMALL, "input": "hi"},
                             headers=bearer(secret))
    error = refused(response, 404, upstream)
    assert "<html" not in response.text.lower()
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_wrong_method_on_embeddings_gets_405_in_the_envelope(relay, secret, upstream, method):
    response = relay.request(method, "/v1/embeddings", headers=bearer(secret))
    error = refused(response, 405, upstream)
    assert "<html" not in response.text.lower()
    assert error["type"] == "invalid_request_error"


# --- the official OpenAI SDK ----------------------------------------------------------


@pytest.fixture
def sdk(relay_server, secret) -> openai.OpenAI:
    with openai.OpenAI(api_key=secret, base_url=relay_server + "/v1", max_retries=0) as client:
        yield client


def test_the_sdk_gets_float_vectors_equal_to_the_float_answer(relay, secret, sdk, upstream):
    texts = ["hello world", PROSE, "last"]
    result = sdk.embeddings.create(model=SMALL, input=texts)
    # The SDK asked for base64 and decoded it.
    assert upstream.stats()["last_body"]["encoding_format"] == "base64"
    as_floats = vectors(embed(relay, secret, {"model": SMALL, "input": texts}))
    assert [item.index for item in result.data] == [0, 1, 2]
    assert [len(item.embedding) for item in result.data] == [1536] * 3
    assert [list(item.embedding) for item in result.data] == [float32(v) for v in as_floats]
    assert result.model == SMALL
    assert result.usage.prompt_tokens == sum(map(tokens.count_text, texts))


def test_the_sdk_gets_correct_vectors_from_an_upstream_that_sends_floats(
    relay_server, tenant, fake_upstream, relay
):
    group = group_with("floats-only", [SMALL], fake_upstream.base_url("floats"))
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="floats")
    texts = ["hello world", "second"]
    as_floats = vectors(embed(relay, secret, {"model": SMALL, "input": texts}))
    with openai.OpenAI(api_key=secret, base_url=relay_server + "/v1", max_retries=0) as client:
        result = client.embeddings.create(model=SMALL, input=texts)
    assert [list(item.embedding) for item in result.data] == [float32(v) for v in as_floats]


def test_the_sdk_raises_authentication_error_for_a_bad_key(relay_server, secret):
    client = openai.OpenAI(api_key=UNKNOWN_SECRET, base_url=relay_server + "/v1", max_retries=0)
    with client, pytest.raises(openai.AuthenticationError) as raised:
        client.embeddings.create(model=SMALL, input=["hi"])
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert raised.value.request_id


def test_the_sdk_raises_not_found_for_a_missing_model(sdk):
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.embeddings.create(model="no-such-model", input=["hi"])
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"


def test_the_sdk_raises_bad_request_naming_the_param(sdk):
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.embeddings.create(model=SMALL, input=["ok", ""])
    assert raised.value.param == "input"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.embeddings.create(model=SMALL, input=[[1] * 10, [2] * 8193])
    assert raised.value.param == "input[1]"


def test_the_sdk_exposes_the_request_id(sdk):
    raw = sdk.embeddings.with_raw_response.create(model=SMALL, input=["hi"])
    assert raw.headers.get("x-request-id")
    assert len(raw.parse().data[0].embedding) == 1536


def test_the_sdk_lists_and_retrieves_models(sdk):
    assert sorted(model.id for model in sdk.models.list()) == sorted(GROUP_MODELS)
    assert sdk.models.retrieve(SMALL).id == SMALL
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-model")


# --- health -------------------------------------------------------------------------


def test_healthz_answers_200(relay):
    response = relay.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_with_the_database_and_redis_up(relay):
    response = relay.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
