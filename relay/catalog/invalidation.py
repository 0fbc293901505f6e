"""Telling every web process that the catalog changed: a revoked key, a
changed price or group, a disabled channel.

Each process caches keys and routes for ``RELAY_CONFIG_CACHE_TTL_S``
(keys.py, routes.py), so on several nodes a change reaches every node within
that TTL however it is told. To make it sooner, a committed change to any
model the caches read publishes one message on a Redis channel, and each
web process listens and empties its caches when one comes (pub/sub reaches
every node of a Redis Cluster). A process that misses a message (Redis
away, its listener reconnecting) still converges within the TTL, and it
empties its caches again whenever its listener (re)subscribes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import ApiKey, AuditEvent, Group, GroupModel, Tenant
from billing import redis_url
from billing.models import BasePrice
from relay.catalog import keys, routes
from relay.models import Channel, ChannelModel

log = logging.getLogger(__name__)

CHANNEL = "relay:catalog-changed"
_RETRY_S = 1.0
_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def publish() -> None:
    """Tell every process; if Redis is away, the TTL still converges them."""
    try:
        redis_url.client(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2).publish(
            CHANNEL, b"1"
        )
    except redis.RedisError as exc:
        log.warning("could not announce a catalog change (%s); caches expire within %s s",
                    type(exc).__name__, settings.RELAY_CONFIG_CACHE_TTL_S)


def _changed(sender, **_kwargs) -> None:
    # After the commit: a process that reloads at once must read the change.
    transaction.on_commit(publish)


# An audit event too: every operator change writes one in its transaction,
# including those made by a queryset's update(), which sends no post_save.
for _model in (ApiKey, Tenant, Group, GroupModel, BasePrice, Channel, ChannelModel, AuditEvent):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"catalog-changed-{_model.__name__}")
    post_delete.connect(_changed, sender=_model,
                        dispatch_uid=f"catalog-deleted-{_model.__name__}")


def clear_caches() -> None:
    keys.clear_cache()
    routes.clear_cache()


def ensure_listening() -> None:
    """Start this event loop's listener, once (the request path calls it)."""
    loop = asyncio.get_running_loop()
    if loop not in _listeners:
        _listeners[loop] = loop.create_task(_listen())


def _subscriber() -> aioredis.Redis:
    """A connection to one node: in a cluster any node hears every PUBLISH."""
    target = redis_url.parse(settings.REDIS_URL)
    if target.kind == redis_url.CLUSTER:
        host, port = target.nodes[0]
        return aioredis.Redis(host=host, port=port, username=target.username,
                              password=target.password, ssl=target.tls)
    return redis_url.async_client(settings.REDIS_URL)


async def _listen() -> None:
    while True:
        client = None
        try:
            client = _subscriber()
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                clear_caches()  # whatever was missed while away
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        clear_caches()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (the listener must outlive any failure)
            log.info("catalog listener reconnecting (%s)", type(exc).__name__)
        finally:
            if client is not None:
                await client.aclose()
        await asyncio.sleep(_RETRY_S)
