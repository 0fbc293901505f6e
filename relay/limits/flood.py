"""The limit on invalid API keys from one address: past
``RELAY_INVALID_KEY_LIMIT_PER_MIN`` a minute, a key this process has not
cached is refused with 429 before the database is asked
(relay/pipeline/auth.py calls both functions here).
"""

from __future__ import annotations

import time

from django.conf import settings

from relay.connections import pools
from relay.connections.pools import REDIS_FAILURES
from relay.contract.errors import RateLimited
from relay.limits.admission import redis_failed, scripts_for
from relay.limits.gcra import format_duration

_INVALID_KEY_WINDOW_MS = 60_000


async def check_invalid_key_flood(client_ip: str) -> None:
    """Before the database is asked about a key this process does not know:
    refuse an address that already sent too many invalid keys this minute."""
    await _invalid_keys(client_ip, note=False)


async def note_invalid_key(client_ip: str) -> None:
    """Count an invalid key from this address; past the limit, raise
    RateLimited (answered instead of the 401)."""
    await _invalid_keys(client_ip, note=True)


async def _invalid_keys(client_ip: str, *, note: bool) -> None:
    if not client_ip:
        return
    client = pools.redis()
    scripts = scripts_for(client)
    if scripts.down_until > time.monotonic():
        return  # fail open: no flood limit while Redis is down
    try:
        count, left_ms = await scripts.invalid_key(
            keys=(f"rl:badkey:{client_ip}",),
            args=(_INVALID_KEY_WINDOW_MS, 1 if note else 0),
            client=client,
        )
    except REDIS_FAILURES as failure:
        redis_failed(client, failure)
        return
    limit = settings.RELAY_INVALID_KEY_LIMIT_PER_MIN
    if count > limit or (not note and count >= limit):
        left_ms = left_ms if left_ms > 0 else _INVALID_KEY_WINDOW_MS
        raise RateLimited(
            f"Too many requests with invalid API keys from {client_ip}. Please try again in "
            f"{format_duration(left_ms * 1000)}.",
            limit_type="requests",
            retry_after_s=left_ms / 1000,
        )
