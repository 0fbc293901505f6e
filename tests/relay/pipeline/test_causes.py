"""What channel health counts a failed call as (relay/pipeline/causes.py),
read from each provider's own error answers as the fake upstream gives them."""

from __future__ import annotations

import importlib

import pytest

from relay.devtools.fake_upstream import common
from relay.pipeline import causes
from relay.pipeline.upstream import refusal
from relay.providers.base import ChannelRoute

QUOTA_DIALECTS = ("gemini", "cohere", "voyage", "jina", "mistral", "ollama", "bedrock")


def route(kind: str, credential: str = "sk-secret-credential") -> ChannelRoute:
    return ChannelRoute(
        channel_id=1,
        name="c",
        kind=kind,
        base_url="http://x",
        credential=credential,
        priority=0,
        weight=1,
        upstream_model="m",
    )


@pytest.mark.parametrize("dialect", QUOTA_DIALECTS)
def test_each_dialects_out_of_quota_answer_is_a_quota_failure(dialect):
    answer = importlib.import_module(f"relay.devtools.fake_upstream.{dialect}").out_of_quota()
    failure = refusal(route(dialect), answer.status, answer.body)
    assert failure.cause == causes.QUOTA, (dialect, answer.status, answer.body)


def test_openais_insufficient_quota_429_is_a_quota_failure():
    answer = common.error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
    )
    assert refusal(route("openai"), 429, answer.body).cause == causes.QUOTA


@pytest.mark.parametrize("dialect", ("openai", "gemini", "cohere", "voyage", "jina", "mistral"))
def test_a_rate_limit_without_quota_words_is_not_the_channels_failure(dialect):
    module = importlib.import_module(f"relay.devtools.fake_upstream.{dialect}")
    answer = module.error(429, "Rate limit reached for requests. Please retry in 1s.")
    failure = refusal(route(dialect), 429, answer.body)
    assert failure.cause is None
    assert failure.status == 429  # still failed over to another channel


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("dialect", ("openai", "cohere", "voyage", "jina", "mistral", "bedrock"))
def test_a_refused_credential_is_a_credential_failure(dialect, status):
    module = importlib.import_module(f"relay.devtools.fake_upstream.{dialect}")
    answer = module.error(status, "Invalid API key")
    assert refusal(route(dialect), status, answer.body).cause == causes.CREDENTIAL


def test_geminis_400_api_key_invalid_is_a_credential_failure():
    from relay.devtools.fake_upstream import gemini

    answer = gemini.error(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
    assert refusal(route("gemini"), 400, answer.body).cause == causes.CREDENTIAL


@pytest.mark.parametrize("status", [500, 502, 503, 404])
def test_server_errors_are_counted_failures(status):
    answer = common.error(status, "upstream is down", "server_error")
    assert refusal(route("openai"), status, answer.body).cause == causes.FAILURES


def test_the_detail_never_carries_the_credential():
    credential = "sk-secret-credential"
    answer = common.error(401, f"Incorrect API key provided: {credential}.")
    failure = refusal(route("openai", credential), 401, answer.body)
    assert credential not in failure.detail
    assert failure.detail.startswith("401 Incorrect API key provided: ***")


def test_timeouts_and_connection_errors_are_counted_failures():
    from relay.pipeline.upstream import ChannelFailed, _failures_classified

    for error in (TimeoutError(), __import__("aiohttp").ClientConnectionError()):
        with pytest.raises(ChannelFailed) as caught, _failures_classified():
            raise error
        assert caught.value.cause == causes.FAILURES
