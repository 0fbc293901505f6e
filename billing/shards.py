"""Which Redis hash slot a tenant's request-path state lives in.

Each request runs one Lua script over its key's and its tenant's limits, the
tenant's balance, its holds and the usage stream; in a Redis Cluster a
script's keys must share one hash slot. So every such key carries the
tenant's hash tag, ``{sN}`` with N = tenant id modulo ``USAGE_STREAM_SHARDS``:
a tenant's state is in one slot, updated atomically on one shard, and the
tenants spread over that many slots. The tag names a shard rather than the
tenant so that the usage stream and the hold set can share the slot too and
be few enough to enumerate (billing/streams.py drains each stream).

Changing ``USAGE_STREAM_SHARDS`` moves tenants to other tags: stop the web
tier and let the workers drain every stream first (docs/deploy.md).
"""

from __future__ import annotations

from django.conf import settings


def tag(tenant_id: int) -> str:
    """The hash tag of the tenant's state, braces included."""
    return f"{{s{tenant_id % settings.USAGE_STREAM_SHARDS}}}"


def all_tags() -> list[str]:
    return [f"{{s{shard}}}" for shard in range(settings.USAGE_STREAM_SHARDS)]
