"""Keys and group limits for the rate-limit tests, and what their answers say.

In-process tests call ``admission.admit`` through ``try_admit`` with a real Redis.
"""

from __future__ import annotations

import itertools
import random
import re

from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes
from relay.contract.errors import RateLimited
from relay.limits import admission
from tests.helpers import SMALL

# Distinct ids per test, so the per-process fallback state of one test never
# meets another's.
_ids = itertools.count(random.randrange(10**6, 10**9, 1000))


def key_context(
    *,
    rpm=None,
    tpm=None,
    concurrency=None,
    tenant_rpm=None,
    tenant_tpm=None,
    tenant_concurrency=None,
    allowed_ips=(),
    tenant_id=None,
) -> KeyContext:
    key_id = next(_ids)
    return KeyContext(
        key_id=key_id,
        tenant_id=tenant_id or key_id,
        group_id=1,
        prefix="sk-test",
        last4="test",
        expires=None,
        allowed_models=frozenset(),
        allowed_ips=tuple(allowed_ips),
        spend_cap_nanos=None,
        limit_rpm=rpm,
        limit_tpm=tpm,
        limit_concurrency=concurrency,
        tenant_limit_rpm=tenant_rpm,
        tenant_limit_tpm=tenant_tpm,
        tenant_limit_concurrency=tenant_concurrency,
    )


def group_routes(*, rpm=None, tpm=None, concurrency=None) -> GroupRoutes:
    return GroupRoutes(
        group_id=1, limit_rpm=rpm, limit_tpm=tpm, limit_concurrency=concurrency, models={}
    )


NO_GROUP_LIMITS = group_routes()


async def try_admit(key, tokens=1, routes=NO_GROUP_LIMITS, ip="127.0.0.1"):
    """The Admission, or the RateLimited it raised."""
    try:
        return await admission.admit(
            key=key, routes=routes, model=SMALL, tokens=tokens, client_ip=ip
        )
    except RateLimited as refused:
        return refused


def seconds(duration: str) -> float:
    """Parse what format_duration writes (1m30s, 8.64s, 20ms)."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:(\d+)ms)?", duration)
    assert match, duration
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + int(ms or 0) / 1000
