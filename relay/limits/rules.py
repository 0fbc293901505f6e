"""Rate limits: requests per minute, tokens per minute and requests in flight,
per key and per tenant. This module holds the rules: which limits apply to a
request, what the limiter script is given (``Plan``), and OpenAI's headers
and 429s for what it decided.

A key's limits are its own overrides, else its group's defaults (null means
unlimited); the tenant's limits hold over all its keys together, so issuing
more keys does not multiply them. Each key may also carry an IP allow-list.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings

from billing import shards
from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes
from relay.contract.errors import PermissionDenied, RateLimited
from relay.lib import addresses
from relay.limits.gcra import Decision, Limits, format_duration

NO_LIMITS = Limits(None, None, None, None, None, None)


def effective_limits(key: KeyContext, routes: GroupRoutes) -> Limits:
    """The key's override if set, else its group's default; the tenant's own."""
    return Limits(
        routes.limit_rpm if key.limit_rpm is None else key.limit_rpm,
        routes.limit_tpm if key.limit_tpm is None else key.limit_tpm,
        key.tenant_limit_rpm,
        key.tenant_limit_tpm,
        routes.limit_concurrency if key.limit_concurrency is None else key.limit_concurrency,
        key.tenant_limit_concurrency,
    )


# --- refusals -----------------------------------------------------------------

_TENANT_WIDE = " in your organization (all its API keys together)"
_RATES = {
    1: ("requests", "requests per min (RPM)", ""),
    2: ("tokens", "tokens per min (TPM)", ""),
    3: ("requests", "requests per min (RPM)", _TENANT_WIDE),
    4: ("tokens", "tokens per min (TPM)", _TENANT_WIDE),
}
# A slot frees when some request ends, which nobody can predict; the SDKs
# back off and retry after this.
_IN_FLIGHT_RETRY_S = 1.0


def rate_headers(limits: Limits, decision: Decision) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers from the key's own rates. A rate that is
    unlimited has no header at all: any number sent for it would be made up."""
    headers: dict[str, str] = {}
    if limits.key_rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.key_rpm)
        headers["x-ratelimit-remaining-requests"] = str(decision.rpm_remaining)
        headers["x-ratelimit-reset-requests"] = format_duration(decision.rpm_reset_us)
    if limits.key_tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.key_tpm)
        headers["x-ratelimit-remaining-tokens"] = str(decision.tpm_remaining)
        headers["x-ratelimit-reset-tokens"] = format_duration(decision.tpm_reset_us)
    return headers


def refusal(
    decision: Decision, limits: Limits, *, model: str, tokens: int, headers: dict[str, str]
) -> RateLimited:
    """OpenAI's 429 for the limit the decision names."""
    limit = limits[decision.refused - 1]
    if decision.refused >= 5:
        whose = "" if decision.refused == 5 else _TENANT_WIDE
        return RateLimited(
            f"Rate limit reached for {model}{whose} on concurrent requests: Limit {limit}, "
            f"In flight {decision.used}, Requested 1. Please wait for a request in flight "
            "to finish, then try again.",
            limit_type="requests",
            retry_after_s=_IN_FLIGHT_RETRY_S,
            headers=headers,
        )
    limit_type, unit, whose = _RATES[decision.refused]
    requested = tokens if limit_type == "tokens" else 1
    head = (
        f"Rate limit reached for {model}{whose} on {unit}: Limit {limit}, "
        f"Used {decision.used}, Requested {requested}."
    )
    if decision.retry_us >= 0:
        return RateLimited(
            f"{head} Please try again in {format_duration(decision.retry_us)}.",
            limit_type=limit_type,
            retry_after_s=decision.retry_us / 1_000_000,
            headers=headers,
        )
    # Waiting cannot help; tell the SDKs not to retry (they honour this header).
    headers["x-should-retry"] = "false"
    if limit_type == "tokens":
        advice = (
            "This request alone is over the limit, so it can never succeed: split the input "
            "into smaller requests, or ask for a higher limit."
        )
    else:
        advice = "This limit admits no requests; ask for a higher limit."
    return RateLimited(
        f"{head} {advice}", limit_type=limit_type, retry_after_s=60.0, headers=headers
    )


def check_address(key: KeyContext, client_ip: str) -> None:
    """Raise PermissionDenied when the address is not on the key's allow-list."""
    if key.allowed_ips and not addresses.within(client_ip, key.allowed_ips):
        raise PermissionDenied(
            f"This API key may not be used from {client_ip or 'an unknown address'}: the "
            "address is not on the key's IP allow-list. Its owner can add it in the console "
            "of this relay.",
            code="ip_not_allowed",
        )


def bucket_keys(tenant_id: int, key_id: int) -> tuple[str, str, str, str]:
    """The key's and the tenant's buckets and in-flight sets, under the
    tenant's hash tag (billing/shards.py) so the request's one script, with
    the balance and the hold, runs on one Redis Cluster shard."""
    tag = shards.tag(tenant_id)
    return (
        f"rl:{tag}:k:{key_id}",
        f"rl:{tag}:t:{tenant_id}",
        f"rl:{tag}:k:{key_id}:slots",
        f"rl:{tag}:t:{tenant_id}:slots",
    )


@dataclass(frozen=True)
class Plan:
    """What the limiter script needs for one request (relay/limits/lua.py)."""

    limits: Limits
    keys: tuple[str, str, str, str]
    slot_keys: tuple[str, ...]  # the in-flight sets this request takes a slot in
    slot_id: str
    args: tuple

    @classmethod
    def of(cls, key: KeyContext, limits: Limits, tokens: int, *, slot_id: str = "") -> Plan:
        """``slot_id`` names the request's in-flight slot: the request id
        when there is one (unique already), else a random one."""
        keys = bucket_keys(key.tenant_id, key.key_id)
        slot_keys = tuple(
            name for name, limit in zip(keys[2:], limits[4:], strict=True) if limit is not None
        )
        slot_id = (slot_id or secrets.token_hex(8)) if slot_keys else ""
        args = (
            tokens,
            *(-1 if limit is None else limit for limit in limits),
            slot_id,
            settings.RELAY_INFLIGHT_SLOT_TTL_S * 1_000_000,
        )
        return cls(limits, keys, slot_keys, slot_id, args)
