"""The wire contract of /v1/ (shared/CONTRACT.md) as the official OpenAI SDK sees it:
vectors, errors, request ids and models, against the live relay.
"""

from __future__ import annotations

import openai
import pytest

from accounts.models import ApiKey
from relay.contract import tokens
from tests.helpers import PROSE, SMALL, embed
from tests.relay.api.helpers import GROUP_MODELS, UNKNOWN_SECRET, float32, group_with, vectors

pytestmark = pytest.mark.django_db(transaction=True)


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
