"""Connections a web process keeps open: Redis (redis-py, and the pipelined
connection the request path's scripts run on) and the upstream HTTP pool.

Both are bound to the event loop that created them. A server process runs
one loop for its life; tests may run several loops in turn, so clients are
kept per loop.
"""

from __future__ import annotations

import asyncio
import weakref

import aiohttp
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from billing import redis_url
from relay.connections import egress
from relay.connections.bulk_replies import BulkConnection
from relay.connections.lua_client import LuaClient

# A Redis that does not answer fails the request's money check (503) rather
# than hold it for long.
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_REPLY_TIMEOUT_S = 2.0
# Errors that mean "Redis is not answering properly": anything from the client
# (connection, timeout, a full or read-only Redis). Limits then fail open and
# money fails closed, never a 500.
REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

_redis: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lua: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_http: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_reader: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def redis() -> aioredis.Redis | aioredis.RedisCluster:
    """redis-py's client for REDIS_URL: a server, a cluster or a Sentinel's primary."""
    loop = asyncio.get_running_loop()
    client = _redis.get(loop)
    if client is None:
        client = redis_url.async_client(
            settings.REDIS_URL,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_REPLY_TIMEOUT_S,
            # A request in flight holds at most one connection at a time, and
            # a pool that runs out raises at once (MaxConnectionsError): limits
            # then fall back to per-process counting and money checks refuse
            # with 503. So the pool is as large as what one process may have
            # in flight; with 256, 1,000 clients got up to 30% 503s. Connections
            # open only as concurrency needs them (~20 KB here, ~50 KB in Redis).
            max_connections=2048,
        )
        _redis[loop] = client
    return client


def cache_redis() -> aioredis.Redis | None:
    """The embedding cache's Redis (CACHE_REDIS_URL), None when there is none."""
    if not settings.CACHE_REDIS_URL:
        return None
    loop = asyncio.get_running_loop()
    client = _cache.get(loop)
    if client is None:
        client = _cache[loop] = aioredis.Redis.from_url(
            settings.CACHE_REDIS_URL,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_REPLY_TIMEOUT_S,
            max_connections=256,
        )
    return client


def cache_reader() -> LuaClient | None:
    """The embedding cache's lookups (one MGET of a whole batch) on a
    pipelined connection (relay/connections/lua_client.py) that reads the
    reply into one buffer (relay/connections/bulk_replies.py): redis-py's
    asyncio stream copied a 2,048-entry, 8 MiB reply once more than hiredis,
    and hiredis made an object of each entry. None without a cache."""
    if not settings.CACHE_REDIS_URL:
        return None
    loop = asyncio.get_running_loop()
    client = _cache_reader.get(loop)
    if client is None:
        client = _cache_reader[loop] = LuaClient(
            settings.CACHE_REDIS_URL,
            connect_timeout_s=REDIS_CONNECT_TIMEOUT_S,
            reply_timeout_s=REDIS_REPLY_TIMEOUT_S,
            connection_class=BulkConnection,
        )
    return client


async def close_cache() -> None:
    """Close this loop's cache clients (a test's loop, before it ends)."""
    loop = asyncio.get_running_loop()
    for clients in (_cache, _cache_reader):
        client = clients.pop(loop, None)
        if client is not None:
            await client.aclose()


def lua() -> LuaClient:
    """The request path's scripts (relay/pipeline/gate.py) run here: one pipelined
    connection per process, see relay/connections/lua_client.py."""
    loop = asyncio.get_running_loop()
    client = _lua.get(loop)
    if client is None:
        client = LuaClient(
            settings.REDIS_URL,
            connect_timeout_s=REDIS_CONNECT_TIMEOUT_S,
            reply_timeout_s=REDIS_REPLY_TIMEOUT_S,
        )
        _lua[loop] = client
    return client


def http() -> aiohttp.ClientSession:
    """The pooled upstream client. aiohttp rather than httpx on this path:
    httpx's own async pool degrades under concurrency (encode/httpx#3215) and
    costs several times more CPU per request here."""
    loop = asyncio.get_running_loop()
    session = _http.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=egress.GuardedResolver(),
                limit=settings.RELAY_UPSTREAM_POOL_SIZE,
                limit_per_host=0,
                ttl_dns_cache=300,
                keepalive_timeout=30,
            ),
            timeout=aiohttp.ClientTimeout(
                sock_connect=settings.RELAY_UPSTREAM_CONNECT_TIMEOUT_S,
                sock_read=settings.RELAY_UPSTREAM_READ_TIMEOUT_S,
            ),
            # The proxy reads the body as bytes; never let aiohttp guess or
            # decompress into something else.
            auto_decompress=True,
            raise_for_status=False,
            trust_env=False,
        )
        _http[loop] = session
    return session
