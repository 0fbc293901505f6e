"""Where the relay may send requests: the guard against a channel being used
to reach the relay's own network (SSRF).

A channel's base URL must be http(s). At connect time every address a host
resolves to is checked: private, loopback, link-local, shared, reserved and
multicast addresses are refused unless the operator allowed their range
(``RELAY_UPSTREAM_ALLOWED_NETWORKS``: a local model server is legitimate).
Cloud metadata addresses are refused always. Redirects are never followed
(relay/pipeline/upstream.py), so a public URL cannot bounce a request inward.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# Instance metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba):
# credentials live there; no setting opens them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class DestinationRefused(OSError):
    """The upstream address is not one the relay may connect to."""


def _allowed_networks() -> tuple:
    return _parsed_networks(tuple(settings.RELAY_UPSTREAM_ALLOWED_NETWORKS))


@functools.lru_cache(maxsize=8)
def _parsed_networks(spec: tuple[str, ...]) -> tuple:
    # Parsed once per setting value, not on every request.
    return tuple(ipaddress.ip_network(n, strict=False) for n in spec)


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return False
    if ip.is_global:
        return True
    return any(ip in network for network in _allowed_networks())


def check_literal_host(url: str) -> None:
    """Refuse a URL whose host is an IP address the relay may not reach
    (aiohttp does not consult the resolver for literal addresses)."""
    host = _literal_address(url)
    if host is not None and not address_allowed(host):
        raise DestinationRefused(f"upstream address {host} is not allowed")


@functools.lru_cache(maxsize=1024)
def _literal_address(url: str) -> str | None:
    """The URL's host when it is an IP address; None for a name (the
    resolver checks what a name resolves to). Cached: a channel's URL is the
    same on every request."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def validate_base_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("A channel's base URL must be an http:// or https:// URL."))
    try:
        check_literal_host(url)
    except DestinationRefused as exc:
        # Translated when raised: the operator console reads it in its person's
        # language, the operator API in English.
        raise ValidationError(
            _(
                "%(refusal)s. Private and local addresses need RELAY_UPSTREAM_ALLOWED_NETWORKS; "
                "cloud metadata addresses are never allowed."
            )
            % {"refusal": exc}
        ) from exc


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses names that lead anywhere not allowed."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        results = await self._inner.resolve(host, port, family)
        refused = [r["host"] for r in results if not address_allowed(r["host"])]
        if refused:
            # All or nothing: a name that resolves to one internal address
            # among public ones is a rebinding attempt, not a mirror.
            raise DestinationRefused(f"{host} resolves to {refused[0]}, which is not allowed")
        return results

    async def close(self) -> None:
        await self._inner.close()
