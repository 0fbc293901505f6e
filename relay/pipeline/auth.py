"""Who is calling: the Bearer key, checked against the per-process key
cache (relay/catalog/keys.py) in front of the database."""

from __future__ import annotations

from django.utils import timezone

from accounts import keys
from relay.catalog import invalidation
from relay.catalog.keys import KeyContext, key_context
from relay.contract.errors import InvalidApiKey, MissingApiKey
from relay.limits import flood


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise MissingApiKey()
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise MissingApiKey()
    return secret


async def authenticate(authorization: str | None, client_ip: str = "") -> KeyContext:
    invalidation.ensure_listening()  # this loop hears of catalog changes
    secret = bearer_secret(authorization)
    if keys.refused_without_lookup(secret):
        raise InvalidApiKey(keys.mask(secret))
    # Only a key this process has not cached reaches the database; an
    # address that sent too many invalid keys is refused (429) before it.
    context = await key_context(
        keys.digest(secret), before_query=lambda: flood.check_invalid_key_flood(client_ip)
    )
    if context is None or (context.expires is not None and context.expires <= timezone.now()):
        await flood.note_invalid_key(client_ip)  # past the address's limit: 429, not 401
        raise InvalidApiKey(keys.mask(secret))
    return context
