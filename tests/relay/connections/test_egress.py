"""Channels cannot be pointed at the relay's own network (no connection is
ever opened to the refused addresses here: the checks run before it)."""

import asyncio

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from relay.connections import egress
from relay.contract.validation import EmbeddingRequest
from relay.pipeline import upstream
from tests.relay.providers.helpers import route


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.5",
        "127.0.0.1",
        "::1",
        "fe80::1",
        "169.254.1.1",
        "100.64.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_local_and_link_local_addresses_are_refused_by_default(address):
    with override_settings(RELAY_UPSTREAM_ALLOWED_NETWORKS=[]):
        assert not egress.address_allowed(address)


def test_public_addresses_are_allowed():
    with override_settings(RELAY_UPSTREAM_ALLOWED_NETWORKS=[]):
        assert egress.address_allowed("8.8.8.8")
        assert egress.address_allowed("2606:4700:4700::1111")


def test_an_allowed_range_opens_a_local_model_server_but_never_the_metadata_service():
    with override_settings(RELAY_UPSTREAM_ALLOWED_NETWORKS=["10.0.0.0/8", "169.254.0.0/16"]):
        assert egress.address_allowed("10.1.2.3")
        assert not egress.address_allowed("169.254.169.254")
        assert not egress.address_allowed("192.168.0.10")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/v1",
        "file:///etc/passwd",
        "gopher://x/",
        "example.com/v1",
        "http://169.254.169.254/latest/v1",
    ],
)
def test_a_channel_base_url_must_be_http_and_not_a_refused_address(url):
    with pytest.raises(ValidationError):
        egress.validate_base_url(url)


class FakeResolver:
    def __init__(self, *addresses):
        self.addresses = addresses

    async def resolve(self, host, port=0, family=0):
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self):
        return None


def test_a_name_resolving_to_an_internal_address_is_refused_at_connect_time():
    with override_settings(RELAY_UPSTREAM_ALLOWED_NETWORKS=[]):
        guarded = egress.GuardedResolver(FakeResolver("93.184.216.34", "10.0.0.7"))
        with pytest.raises(egress.DestinationRefused):
            asyncio.run(guarded.resolve("rebind.example", 443))
        public = egress.GuardedResolver(FakeResolver("93.184.216.34"))
        assert asyncio.run(public.resolve("example.com", 443))[0]["host"] == "93.184.216.34"


def test_a_channel_at_a_metadata_address_fails_over_without_connecting(monkeypatch):
    def no_connection():
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(upstream.pools, "http", no_connection)
    channel = route("openai", "http://169.254.169.254/v1")
    request = EmbeddingRequest(model="m", input="hi", token_counts=[1])
    with pytest.raises(upstream.ChannelFailed) as failure:
        asyncio.run(upstream.call(channel, request))
    assert failure.value.kind == "refused_destination"
