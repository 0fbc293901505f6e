"""Who is calling: the Bearer key, checked against a short-lived cache in
front of the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts import keys
from accounts.models import ApiKey, Tenant
from relay import limits
from relay.db import off_loop
from relay.errors import InvalidApiKey, MissingApiKey
from relay.ttlcache import TTLCache


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


_cache: TTLCache[KeyContext | None] = TTLCache(ttl_s=settings.RELAY_CONFIG_CACHE_TTL_S)


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise MissingApiKey()
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise MissingApiKey()
    return secret


def _load(digest: str) -> KeyContext | None:
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


_load_async = off_loop(_load)


async def authenticate(authorization: str | None, client_ip: str = "") -> KeyContext:
    secret = bearer_secret(authorization)
    if keys.refused_without_lookup(secret):
        raise InvalidApiKey(keys.mask(secret))
    digest = keys.digest(secret)

    async def load() -> KeyContext | None:
        # Only a key this process has not cached reaches the database; an
        # address that sent too many invalid keys is refused (429) before it.
        await limits.check_invalid_key_flood(client_ip)
        return await _load_async(digest)

    # Unknown keys are cached too (as None): a flood of bad keys costs one
    # query per key per TTL, not one per request.
    context = await _cache.get(digest, load)
    if context is None or (context.expires is not None and context.expires <= timezone.now()):
        await limits.note_invalid_key(client_ip)  # past the address's limit: 429, not 401
        raise InvalidApiKey(keys.mask(secret))
    return context


def clear_cache() -> None:
    _cache.clear()
