"""The wire contract of /v1/ (shared/CONTRACT.md), over HTTP against the live relay:
a request without a usable key (none, not a bearer, unknown, revoked, expired)
gets 401 in OpenAI's envelope and never reaches the upstream.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from tests.helpers import SMALL, embed, wait_until
from tests.relay.api.helpers import UNKNOWN_SECRET, refused

pytestmark = pytest.mark.django_db(transaction=True)


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
