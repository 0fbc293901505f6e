"""Who is calling, by address: the client's IP behind trusted proxies, and
whether an address is inside a list of CIDR ranges (a key's allow-list)."""

from __future__ import annotations

import functools
import ipaddress
import logging

from django.conf import settings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket should match IPv4 ranges.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


@functools.lru_cache(maxsize=4096)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            # Skipped, not fatal: the rest of the list still applies (and a
            # list with no valid entry matches nobody).
            log.warning("ignoring %r in a list of CIDR ranges: not an address or range", cidr)
    return tuple(networks)


def within(text: str, cidrs: tuple[str, ...]) -> bool:
    """Whether ``text`` is an address inside one of ``cidrs`` (parsed once)."""
    address = _address(text)
    # Compare like with like: an IPv4 address "in" ::/0 would otherwise match.
    return address is not None and any(
        address.version == network.version and address in network for network in _networks(cidrs)
    )


def client_ip(meta: dict) -> str:
    """``client_address`` of a Django request's META."""
    return client_address(meta.get("REMOTE_ADDR") or "", meta.get("HTTP_X_FORWARDED_FOR", ""))


def client_address(remote: str, forwarded_for: str) -> str:
    """The caller's address: the peer (``remote``), or when the peer is one of
    RELAY_TRUSTED_PROXIES, the first untrusted hop of X-Forwarded-For counting
    from the right. Hops further left were written by the client and prove
    nothing: taking the left-most would let anyone pick their address."""
    if not settings.RELAY_TRUSTED_PROXIES:
        return remote
    trusted = tuple(settings.RELAY_TRUSTED_PROXIES)
    if not within(remote, trusted):
        return remote
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not within(hop, trusted):
            return hop
    return hops[0] if hops else remote
