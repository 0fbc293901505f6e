"""What the request path knows of an API key, read from PostgreSQL into a
frozen object and cached per process for ``RELAY_CONFIG_CACHE_TTL_S``.

A revoked or expired key stops working within that TTL. Unknown digests are
cached too (as None): a flood of bad keys costs one query per key per TTL,
not one per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from accounts.models import ApiKey, Tenant
from relay.lib.db import off_loop
from relay.lib.ttlcache import TTLCache


@dataclass(frozen=True)
class KeyContext:
    """What the request path needs to know about a key, without the ORM."""

    key_id: int
    tenant_id: int
    group_id: int
    prefix: str
    last4: str
    expires: datetime | None
    allowed_models: frozenset[str]
    allowed_ips: tuple[str, ...]
    spend_cap_nanos: int | None
    # The key's own overrides (null: the group's default applies).
    limit_rpm: int | None
    limit_tpm: int | None
    limit_concurrency: int | None
    # Limits over all the tenant's keys together.
    tenant_limit_rpm: int | None
    tenant_limit_tpm: int | None
    tenant_limit_concurrency: int | None

    @property
    def masked(self) -> str:
        """The key as OpenAI's 401 shows it, from what is stored."""
        return f"{self.prefix[:5]}***...{self.last4}"

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


def load_key(digest: str) -> KeyContext | None:
    """The active key of an active tenant with this digest, or None."""
    key = (
        ApiKey.objects.select_related("tenant")
        .filter(digest=digest, status=ApiKey.Status.ACTIVE, tenant__status=Tenant.Status.ACTIVE)
        .first()
    )
    if key is None:
        return None
    return KeyContext(
        key_id=key.pk,
        tenant_id=key.tenant_id,
        group_id=key.group_id,
        prefix=key.prefix,
        last4=key.last4,
        expires=key.expires,
        allowed_models=frozenset(key.allowed_models),
        allowed_ips=tuple(key.allowed_ips),
        spend_cap_nanos=key.spend_cap_nanos,
        limit_rpm=key.limit_rpm,
        limit_tpm=key.limit_tpm,
        limit_concurrency=key.limit_concurrency,
        tenant_limit_rpm=key.tenant.limit_rpm,
        tenant_limit_tpm=key.tenant.limit_tpm,
        tenant_limit_concurrency=key.tenant.limit_concurrency,
    )


_cache: TTLCache[KeyContext | None] = TTLCache(ttl_s=settings.RELAY_CONFIG_CACHE_TTL_S)
_load_async = off_loop(load_key)


async def key_context(
    digest: str, *, before_query: Callable[[], Awaitable[None]]
) -> KeyContext | None:
    """The key with this digest from the cache, else from the database;
    ``before_query`` runs first when the database is to be asked (it may
    raise to refuse the query)."""

    async def load() -> KeyContext | None:
        await before_query()
        return await _load_async(digest)

    return await _cache.get(digest, load)


def clear_cache() -> None:
    _cache.clear()
