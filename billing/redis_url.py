"""A Redis client for a URL that names a standalone server, a Redis Cluster or
a Sentinel-managed primary: the one factory every redis-py client of the
relay is made by (the request path's own Lua client reads the same URL,
relay/connections/lua_client.py).

URL forms (docs/deploy.md, "Redis"):

    redis://[user:password@]host:port/db          one server (rediss:// for TLS,
    unix:///path/to/socket?db=0                   unix:// for a socket)
    redis+cluster://[user:password@]host:port[,host:port...]
                                                  a cluster, from any of its nodes
    redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]
                                                  the primary the Sentinels name
                                                  ``service``; the password is the
                                                  primary's, ?sentinel_password=
                                                  the Sentinels' own

``rediss+cluster://`` and ``rediss+sentinel://`` speak TLS to the data nodes.
It lives in billing, the lowest package that talks to Redis, so that billing's
workers and the relay share it.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.cluster import ClusterNode
from redis.sentinel import Sentinel

STANDALONE, CLUSTER, SENTINEL = "standalone", "cluster", "sentinel"


@dataclass(frozen=True)
class Target:
    """Where a Redis URL points."""

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds or Sentinels
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    service: str = ""  # the Sentinels' name for the primary
    sentinel_password: str | None = None
    options: dict = field(default_factory=dict)


def parse(url: str) -> Target:
    """Read a Redis URL; ImproperlyConfigured names what is wrong with it."""
    scheme, _, rest = url.partition("://")
    if scheme in ("redis", "rediss", "unix"):
        return Target(STANDALONE, url)
    base, _, kind = scheme.partition("+")
    if base not in ("redis", "rediss") or kind not in (CLUSTER, SENTINEL) or not rest:
        raise ImproperlyConfigured(
            f"A Redis URL must start redis://, rediss://, unix://, redis+cluster:// or "
            f"redis+sentinel://, not {scheme}://"
        )
    # urlsplit cannot read a list of hosts; split the netloc by hand.
    netloc, _, path_query = rest.partition("/")
    path, _, query = path_query.partition("?")
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    nodes = tuple(_host_port(item, kind) for item in hosts.split(",") if item)
    if not nodes:
        raise ImproperlyConfigured(f"The Redis URL {scheme}://... names no host")
    parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
    params = dict(urllib.parse.parse_qsl(query))
    service, db = "", 0
    if kind == SENTINEL:
        if not parts:
            raise ImproperlyConfigured(
                "A redis+sentinel:// URL names the primary's service after the hosts: "
                "redis+sentinel://host:26379/mymaster/0"
            )
        service, parts = parts[0], parts[1:]
    if parts:
        if not parts[0].isdigit() or len(parts) > 1:
            raise ImproperlyConfigured(f"The Redis URL's database must be a number: {path!r}")
        db = int(parts[0])
    if kind == CLUSTER and db:
        raise ImproperlyConfigured("A Redis Cluster has database 0 only")
    return Target(
        kind,
        url,
        nodes,
        username=urllib.parse.unquote(username) or None,
        password=urllib.parse.unquote(password) or None,
        db=db,
        tls=base == "rediss",
        service=service,
        sentinel_password=params.pop("sentinel_password", None),
        options=params,
    )


def _host_port(item: str, kind: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    default = 26379 if kind == SENTINEL else 6379
    if port and not port.isdigit():
        raise ImproperlyConfigured(f"The Redis URL's port must be a number: {item!r}")
    return host.strip("[]"), int(port) if port else default


def client(url: str, **options) -> redis.Redis | redis.RedisCluster:
    """A synchronous client; ``options`` are redis-py's (timeouts, pool size)."""
    return _client(url, options, redis.Redis, redis.RedisCluster, ClusterNode, Sentinel)


def async_client(url: str, **options) -> aioredis.Redis | aioredis.RedisCluster:
    """The asyncio client for the same URL (bound to the running loop)."""
    return _client(
        url, options, aioredis.Redis, aioredis.RedisCluster, AsyncClusterNode, AsyncSentinel
    )


def _client(url: str, options: dict, standalone, cluster, node, sentinel_class):
    # redis-py's sync and asyncio classes take the same arguments.
    target = parse(url)
    if target.kind == STANDALONE:
        return standalone.from_url(url, **options)
    auth = {"username": target.username, "password": target.password, "ssl": target.tls}
    if target.kind == CLUSTER:
        return cluster(
            startup_nodes=[node(host, port) for host, port in target.nodes], **auth, **options
        )
    sentinel = sentinel_class(
        list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, options), **auth, **options
    )
    return sentinel.master_for(target.service, db=target.db)


def _sentinel_kwargs(target: Target, options: dict) -> dict:
    # Sentinels have their own password (or none) and never TLS here.
    kwargs = {
        key: options[key] for key in ("socket_timeout", "socket_connect_timeout") if key in options
    }
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


def is_standalone(url: str) -> bool:
    return parse(url).kind == STANDALONE
