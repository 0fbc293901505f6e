"""The wire contract of /v1/ (shared/CONTRACT.md), over HTTP against the live relay:
a request body the relay refuses (not JSON, no model or input, inputs too many
or too long, bad options) gets 400, and a model the key may not use gets 404,
each in OpenAI's envelope and without reaching the upstream.
"""

from __future__ import annotations

import pytest

from accounts.models import ApiKey
from relay.contract import tokens
from tests.helpers import ADA, LARGE, LONG_TEXT, PROSE, SMALL, embed, live_now
from tests.relay.api.helpers import group_with, refused, vectors

pytestmark = pytest.mark.django_db(transaction=True)


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
    [
        b"[]",
        b'"text-embedding-3-small"',
        b"42",
        b"null",
        b'[{"model": "text-embedding-3-small", "input": "hi"}]',
    ],
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


@pytest.mark.parametrize(
    ("value", "param", "unknown"),
    [
        ([[4294967296]], "input[0]", 4294967296),
        ([1, 2, 100_300], "input", 100_300),
        ([[1], [2, 200_000]], "input[1]", 200_000),
    ],
    ids=["2**32-in-a-list", "past-cl100k-in-one-array", "second-array"],
)
def test_a_token_id_outside_the_encoding_gets_400_before_anything_is_held_or_sent(
    relay, secret, tenant, upstream, value, param, unknown
):
    before = live_now(tenant.id)
    body = {"model": SMALL, "input": value}
    error = refused(embed(relay, secret, body), 400, upstream)
    assert error["param"] == param and error["code"] == "invalid_value"
    assert error["message"].startswith(f"Invalid '{param}': {unknown} is not a token id")
    assert live_now(tenant.id) == before  # no hold taken, nothing charged


def test_special_token_ids_of_the_encoding_are_accepted(relay, secret):
    response = embed(relay, secret, {"model": SMALL, "input": [[100257, 1, 2]]})
    assert response.status_code == 200, response.text


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


@pytest.mark.parametrize(
    "dimensions",
    [0, -1, "8", 1.5, True, 1537],
    ids=["zero", "negative", "string", "float", "boolean", "above-1536"],
)
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


@pytest.mark.parametrize(
    "encoding_format", ["json", "FLOAT", "", 1], ids=["json", "upper-case", "empty", "number"]
)
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
    _key, secret = ApiKey.issue(
        tenant=tenant, group=group, name="small-only", allowed_models=[SMALL]
    )
    error = refused(embed(relay, secret, {"model": LARGE, "input": "hi"}), 404, upstream)
    assert error["message"] == (
        f"The model `{LARGE}` does not exist or you do not have access to it."
    )
    assert error["code"] == "model_not_found"
    assert embed(relay, secret, {"model": SMALL, "input": "hi"}).status_code == 200
