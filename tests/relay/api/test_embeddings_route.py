"""POST /v1/embeddings answered straight from ASGI (relay/api/embeddings_route.py).

In process, the ASGI messages themselves are checked against what Django's
route (relay/api/handler.py and EmbeddingsView) answers to the same request;
over HTTP, what a client sees of a served and a refused request.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from accounts import keys
from accounts.models import ApiKey
from relay.api import embeddings_route, views
from relay.asgi import api, application
from tests.helpers import (
    BODY,
    SMALL,
    Answer,
    body_messages,
    call,
    call_async,
    make_channel,
    scope,
)

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def assert_one_whole_message(answer: Answer) -> None:
    """One start, one body, and a Content-Length: nothing sliced or chunked."""
    start, body = answer.messages
    assert start["type"] == "http.response.start"
    assert body["type"] == "http.response.body" and not body.get("more_body", False)
    assert answer.headers["content-length"] == str(len(answer.body))
    assert REQUEST_ID.fullmatch(answer.headers["x-request-id"])


def mistyped_key() -> str:
    secret = keys.generate_secret()
    return secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:]


REFUSALS = {
    "no key": (None, "invalid_request_error"),
    "not bearer": ("Basic dXNlcjpwYXNzd29yZA==", "invalid_request_error"),
    "mistyped key": (f"Bearer {mistyped_key()}", "invalid_api_key"),
}


def assert_same_answer(direct: Answer, through_django: Answer) -> None:
    assert direct.status == through_django.status
    assert direct.body == through_django.body
    assert_one_whole_message(direct)
    # The same headers, but for the framing and each request's own id.
    framing = {"content-length", "transfer-encoding", "x-request-id"}
    assert {k: v for k, v in direct.headers.items() if k not in framing} == {
        k: v for k, v in through_django.headers.items() if k not in framing
    }


def logged(caplog, answer: Answer) -> tuple[int, str]:
    [line] = [
        r
        for r in caplog.records
        if r.name == "relay.requests" and r.request_id == answer.headers["x-request-id"]
    ]
    return line.status, line.error_code


# A mistyped key is looked up in the database.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("authorization", "error_code"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_is_the_one_the_django_view_gives(caplog, authorization, error_code):
    with caplog.at_level(logging.INFO, logger="relay.requests"):
        direct = call(application, authorization=authorization)
        through_django = call(api, authorization=authorization)
    assert direct.status == 401
    assert_same_answer(direct, through_django)
    assert logged(caplog, direct) == logged(caplog, through_django) == (401, error_code)


def test_a_bug_is_a_500_in_the_envelope_and_its_traceback_only_in_the_log(monkeypatch, caplog):
    async def broken(**kwargs):
        raise RuntimeError("a bug, with sk-secret-in-its-message")

    monkeypatch.setattr(embeddings_route, "embed", broken)
    monkeypatch.setattr(views, "embed", broken)
    with caplog.at_level(logging.INFO):
        direct = call(application)
        through_django = call(api)
    assert direct.status == 500
    assert b"sk-secret" not in direct.body
    assert_same_answer(direct, through_django)
    assert logged(caplog, direct) == (500, "server_error")
    unhandled = "unhandled error on /v1/embeddings"
    tracebacks = [r for r in caplog.records if r.getMessage() == unhandled]
    assert len(tracebacks) == 2  # one per route
    assert all("sk-secret" in str(r.exc_info[1]) for r in tracebacks)


def test_a_body_over_the_limit_is_refused_before_the_rest_is_read(settings):
    settings.RELAY_MAX_BODY_BYTES = 1024
    chunks = [b"x" * 400] * 10  # the third one passes the limit
    answer = call(application, authorization="Bearer sk-any", messages=body_messages(*chunks))
    assert answer.status == 413
    assert answer.reads == 3
    assert answer.body == (
        b'{"error":{"message":"The request body exceeds 1024 bytes.",'
        b'"type":"invalid_request_error","param":null,"code":null}}'
    )
    assert_one_whole_message(answer)
    # The other API paths keep the same limit.
    other = call(api, path="/v1/models", messages=body_messages(*chunks))
    assert (other.status, other.reads, other.body) == (413, 3, answer.body)


def test_a_client_that_hangs_up_mid_body_gets_no_answer_and_no_log_line(caplog):
    messages = [
        {"type": "http.request", "body": b'{"model": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    with caplog.at_level(logging.INFO, logger="relay.requests"):
        answer = call(application, messages=messages)
    assert answer.messages == []
    assert [r for r in caplog.records if r.name == "relay.requests"] == []


@pytest.mark.django_db(transaction=True)
def test_a_request_cancelled_in_the_pipeline_is_cleaned_up_and_not_answered(
    tenant, group, fake_upstream
):
    options = "latency=500,name=route-cancelled"
    make_channel(group, fake_upstream.base_url(options))
    _key, secret = ApiKey.issue(tenant=tenant, group=group, name="one", limit_concurrency=1)
    request_scope = scope("POST", "/v1/embeddings", f"Bearer {secret}")

    async def cancelled_at_the_upstream() -> list[dict]:
        sent: list[dict] = []
        served = call_async(application, request_scope, body_messages(BODY), sent)
        task = asyncio.create_task(served)
        while (await asyncio.to_thread(fake_upstream.stats, options))["requests"] == 0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return sent

    assert asyncio.run(cancelled_at_the_upstream()) == []
    # The pipeline let go of the key's one in-flight slot: the next request is served.
    answer = call(application, authorization=f"Bearer {secret}")
    assert answer.status == 200, answer.body
    assert_one_whole_message(answer)


# --- over HTTP --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/embeddings/"])
def test_a_served_and_a_refused_request_carry_their_length_and_request_id(relay, secret, path):
    served = relay.post(
        path, json={"model": SMALL, "input": "hi"}, headers={"Authorization": f"Bearer {secret}"}
    )
    refused = relay.post(
        path,
        json={"model": "no-such-model", "input": "hi"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert (served.status_code, refused.status_code) == (200, 404)
    for response in (served, refused):
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))
        assert "transfer-encoding" not in response.headers
        assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
    assert served.headers["x-request-id"] != refused.headers["x-request-id"]
    assert len(served.json()["data"][0]["embedding"]) == 1536


@pytest.mark.django_db(transaction=True)
def test_a_wrong_method_still_gets_the_views_405(relay, secret):
    refused = relay.get("/v1/embeddings/", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST, OPTIONS"
    assert REQUEST_ID.fullmatch(refused.headers["x-request-id"])
    assert refused.json()["error"]["message"] == "Method GET is not allowed on /v1/embeddings/."


@pytest.mark.django_db(transaction=True)
def test_options_answers_the_allowed_methods(relay):
    answer = relay.options("/v1/embeddings")
    assert answer.status_code == 204
    assert answer.headers["allow"] == "POST, OPTIONS"
    assert REQUEST_ID.fullmatch(answer.headers["x-request-id"])
