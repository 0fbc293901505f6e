"""Where a Redis Cluster's slots live and which server a Sentinel calls the
primary, read for the request path's own Lua client (lua_client.py), and
the redirects a cluster node answers with.

``ask(address, command, sentinel=False)`` is the caller's: it runs one
command on a connection of its own and returns the reply.
"""

from __future__ import annotations

from redis import exceptions as redis_errors

SLOTS = 16384


async def cluster_slots(ask, nodes) -> list:
    """The node serving each slot, from the first node that answers
    CLUSTER SLOTS; ConnectionError when none does."""
    failures = []
    for node in dict.fromkeys(nodes):  # known nodes first, each once
        try:
            reply = await ask(node, (b"CLUSTER", b"SLOTS"))
        except redis_errors.RedisError as error:
            failures.append(f"{node}: {error}")
            continue
        slots: list = [None] * SLOTS
        for start, end, primary, *_replicas in reply:
            # An empty host means "the address you reached me on".
            host = primary[0].decode() if primary[0] else node[0]
            address = (host, int(primary[1]))
            for slot in range(int(start), int(end) + 1):
                slots[slot] = address
        return slots
    raise redis_errors.ConnectionError(f"no Redis Cluster node answered: {'; '.join(failures)}")


async def sentinel_primary(ask, sentinels, service: str) -> tuple[str, int]:
    """The primary's address, from the first Sentinel that knows it."""
    failures = []
    for sentinel in sentinels:
        try:
            reply = await ask(
                sentinel, (b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", service), sentinel=True
            )
        except redis_errors.RedisError as error:
            failures.append(f"{sentinel}: {error}")
            continue
        if reply:
            return reply[0].decode(), int(reply[1])
        failures.append(f"{sentinel}: does not know {service!r}")
    raise redis_errors.ConnectionError(f"no Sentinel named the primary: {'; '.join(failures)}")


def redirect(error: str) -> tuple[bool, int, tuple[str, int]] | None:
    """(moved, slot, address) for ``MOVED 3999 127.0.0.1:6381`` or ``ASK ...``."""
    kind, _, rest = error.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, address = rest.partition(" ")
    host, _, port = address.rpartition(":")
    return kind == "MOVED", int(slot), (host.strip("[]"), int(port))
