"""The wire contract of /v1/ (shared/CONTRACT.md), over HTTP against the live relay:
/v1/models as a key sees it, unknown paths and wrong methods in OpenAI's
envelope, and the health endpoints.
"""

from __future__ import annotations

import pytest

from accounts.models import ApiKey
from tests.helpers import ADA, LARGE, SMALL, embed
from tests.relay.api.helpers import (
    GROUP_MODELS,
    UNKNOWN_SECRET,
    bearer,
    enveloped,
    group_with,
    refused,
)

pytestmark = pytest.mark.django_db(transaction=True)


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
    _key, secret = ApiKey.issue(
        tenant=tenant, group=group, name="limited", allowed_models=[SMALL, ADA, "bge-m3"]
    )
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


@pytest.mark.parametrize(
    "model",
    ["no-such-model", "bge-m3", LARGE],
    ids=["unknown", "other-group", "outside-allow-list"],
)
def test_a_model_the_key_may_not_use_gets_404_from_models(
    relay, tenant, group, channel, fake_upstream, model
):
    group_with("premium", ["bge-m3"], fake_upstream.base_url())
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="limited", allowed_models=[SMALL])
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
    [
        ("POST", "/v1/nothing"),
        ("GET", "/v1/nothing"),
        ("POST", "/v1/embeddings/extra"),
        ("POST", "/v1/chat/completions"),
    ],
)
def test_an_unknown_v1_path_gets_404_in_the_envelope(relay, secret, upstream, method, path):
    response = relay.request(
        method, path, json={"model": SMALL, "input": "hi"}, headers=bearer(secret)
    )
    error = refused(response, 404, upstream)
    assert "<html" not in response.text.lower()
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_wrong_method_on_embeddings_gets_405_in_the_envelope(relay, secret, upstream, method):
    response = relay.request(method, "/v1/embeddings", headers=bearer(secret))
    error = refused(response, 405, upstream)
    assert "<html" not in response.text.lower()
    assert error["type"] == "invalid_request_error"


# --- health -------------------------------------------------------------------------


def test_healthz_answers_200(relay):
    response = relay.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_with_the_database_and_redis_up(relay):
    response = relay.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
