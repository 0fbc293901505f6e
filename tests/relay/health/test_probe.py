"""The channel test (relay/health/probe.py) speaks each provider's dialect:
one embeddings call at the dialect's embeddings path of the fake upstream,
never a chat call, and a failure reported without the channel's credential."""

from __future__ import annotations

import httpx
import pytest

from relay.contract.tokens import count_text
from relay.health.probe import PROBE_INPUT, probe
from tests.clients.channels import DIALECTS, dialect_channel

pytestmark = pytest.mark.django_db
ids = [dialect.id for dialect in DIALECTS]
# Options that change nothing but the fake's stats key, so that the stats
# show this probe's route alone (Azure's path takes no options in the fake).
TAG = "latency=0"


def routes_called(fake) -> dict:
    return httpx.get(f"{fake.url}/_stats").json()


@pytest.mark.parametrize("dialect", DIALECTS, ids=ids)
def test_the_probe_makes_one_embeddings_call_in_the_channels_dialect(dialect, fake_upstream):
    options = TAG if dialect.takes_options else ""
    channel = dialect_channel(None, fake_upstream.url, dialect, options=options)
    fake_upstream.reset()
    result = probe(channel=channel, model=dialect.model)
    assert result.ok, result.error
    assert (result.status, result.dimensions, result.error) == (200, dialect.native, "")
    # Gemini reports no usage; every other dialect of the fake counts cl100k_base.
    reported = None if dialect.kind == "gemini" else count_text(PROBE_INPUT)
    assert result.prompt_tokens == reported
    # One call, at the dialect's embeddings route (the fake has no other
    # routes for a dialect: a chat or completions call would not be counted,
    # and the probe would not have been answered), embedding one text.
    called = routes_called(fake_upstream)
    assert list(called) == [dialect.stats_key(options)]
    assert called[dialect.stats_key(options)]["requests"] == 1
    assert called[dialect.stats_key(options)]["max_items"] == 1


@pytest.mark.parametrize("dialect", DIALECTS, ids=ids)
def test_a_failing_probe_reports_the_dialects_error_without_the_credential(dialect, fake_upstream):
    if dialect.takes_options:
        channel = dialect_channel(None, fake_upstream.url, dialect, options="status=401")
    else:  # Azure: the fake refuses a call without a key
        channel = dialect_channel(None, fake_upstream.url, dialect, credential="")
    result = probe(channel=channel, model=dialect.model)
    assert not result.ok
    assert result.status == 401
    # The dialect's own error body was read, whatever its shape.
    assert result.error.startswith("Upstream status 401: "), result.error
    assert len(result.error) > len("Upstream status 401: ")
    for secret in filter(None, [channel.credential, *channel.credential.split(":")[1:]]):
        assert secret not in result.error


def test_a_bedrock_channel_with_a_malformed_credential_fails_without_showing_it(fake_upstream):
    titan = next(d for d in DIALECTS if d.upstream_model.startswith("amazon.titan"))
    credential = "AKIAFAKERELAYTEST001/fakeRelaySecretWithoutItsColon"
    channel = dialect_channel(None, fake_upstream.url, titan, credential=credential)
    fake_upstream.reset()
    result = probe(channel=channel, model=titan.model)
    assert not result.ok
    assert result.error.startswith("Cannot build the call: ")
    assert "fakeRelaySecret" not in result.error and credential not in result.error
    assert routes_called(fake_upstream) == {}
