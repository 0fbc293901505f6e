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
import ssl
import weakref

import hiredis
import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from redis.asyncio.connection import parse_url
from redis.sentinel import Sentinel

from accounts.models import ApiKey, AuditEvent, Group, GroupModel, Tenant
from billing import redis_url
from billing.models import BasePrice
from relay.catalog import keys, routes
from relay.connections.lua_client import pack
from relay.models import Channel, ChannelModel

log = logging.getLogger(__name__)

CHANNEL = "relay:catalog-changed"
_RETRY_S = 1.0
_CONNECT_TIMEOUT_S = 2.0
_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def publish() -> None:
    """Tell every process; if Redis is away, the TTL still converges them."""
    try:
        redis_url.client(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2).publish(
            CHANNEL, b"1"
        )
    except redis.RedisError as exc:
        log.warning(
            "could not announce a catalog change (%s); caches expire within %s s",
            type(exc).__name__,
            settings.RELAY_CONFIG_CACHE_TTL_S,
        )


def _changed(sender, **_kwargs) -> None:
    # After the commit: a process that reloads at once must read the change.
    transaction.on_commit(publish)


# An audit event too: every operator change writes one in its transaction,
# including those made by a queryset's update(), which sends no post_save.
WATCHED = (ApiKey, Tenant, Group, GroupModel, BasePrice, Channel, ChannelModel, AuditEvent)


def connect() -> None:
    """Announce every committed change to the watched models, in whatever
    process makes it: a web worker, an operator's console, a Celery worker
    auto-disabling a channel (relay/health). Called by ``RelayConfig.ready()``;
    the ``dispatch_uid``s make a second call connect nothing twice."""
    for model in WATCHED:
        post_save.connect(_changed, sender=model, dispatch_uid=f"catalog-changed-{model.__name__}")
        post_delete.connect(
            _changed, sender=model, dispatch_uid=f"catalog-deleted-{model.__name__}"
        )


def clear_caches() -> None:
    keys.clear_cache()
    routes.clear_cache()


def ensure_listening() -> None:
    """Start this event loop's listener, once (the request path calls it).

    A task on the loop whose caches it empties, reading a plain asyncio
    connection: cancelled with its loop (a test's asyncio.run), and never a
    thread (forking a process with a running thread is unsafe)."""
    loop = asyncio.get_running_loop()
    if loop not in _listeners:
        _listeners[loop] = loop.create_task(_listen())


async def _address() -> tuple[str, int]:
    """A data node to subscribe on: any node of a cluster hears every PUBLISH;
    behind Sentinel, the primary (asked off the loop)."""
    target = redis_url.parse(settings.REDIS_URL)
    if target.kind == redis_url.CLUSTER:
        return target.nodes[0]
    if target.kind == redis_url.SENTINEL:
        sentinel = Sentinel(
            list(target.nodes),
            socket_timeout=2,
            sentinel_kwargs={"password": target.sentinel_password}
            if target.sentinel_password
            else None,
        )
        return await asyncio.to_thread(sentinel.discover_master, target.service)
    options = parse_url(settings.REDIS_URL)
    return options.get("host", "localhost"), options.get("port", 6379)


async def _subscribe() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    target = redis_url.parse(settings.REDIS_URL)
    host, port = await _address()
    options = parse_url(settings.REDIS_URL) if target.kind == redis_url.STANDALONE else {}
    password = target.password or options.get("password")
    username = target.username or options.get("username")
    context = ssl.create_default_context() if settings.REDIS_URL.startswith("rediss") else None
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a
    # cancellation that arrives as the connection completes, and a listener
    # that ignored its loop's closing hung asyncio.run (seen on Sentinel).
    async with asyncio.timeout(_CONNECT_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
    if password:
        writer.write(pack((b"AUTH", *(c for c in (username, password) if c))))
    writer.write(pack((b"SUBSCRIBE", CHANNEL)))
    return reader, writer


async def _listen() -> None:
    while True:
        writer = None
        try:
            reader, writer = await _subscribe()
            replies = hiredis.Reader()
            clear_caches()  # whatever was missed while away
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                replies.feed(data)
                while (reply := replies.gets()) is not False:
                    if isinstance(reply, hiredis.ReplyError):
                        raise ConnectionError(str(reply))
                    if isinstance(reply, list) and reply and reply[0] == b"message":
                        clear_caches()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (the listener must outlive any failure)
            log.info("catalog listener reconnecting (%s)", type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(_RETRY_S)
