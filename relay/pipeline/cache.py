"""The per-item embedding cache: an item already embedded by the same
upstream model, with the same dimensions and provider options, in the same
scope (a tenant, or every tenant of a group whose operator chose so), is
answered from here; only the misses go upstream.

Each item is kept as its token count (4 bytes, little-endian) followed by
its vector as raw little-endian float32 bytes, under a digest of what
determines them (the key's ``emb2:`` prefix names that layout: entries of an
older one are simply misses). With the count beside the vector, a request
answered from the cache needs no tokenizer pass over those items
(relay/pipeline/embed.py looks them up before the hold is placed).
Entries have a TTL (``RELAY_CACHE_TTL_S``) and live on a Redis of their
own (``CACHE_REDIS_URL``): that one evicts the least recently used when
full (its size cap), where the main Redis, which holds balances,
limits and the usage stream, never evicts anything. The cache never fails
a request: when it cannot be reached, every item is a miss (logged, at most
every ``_LOG_EVERY_S``), and its writes happen after the answer is built,
without the request waiting for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np
import orjson
from django.conf import settings

from relay.connections import pools
from relay.connections.pools import REDIS_FAILURES
from relay.contract.vectors import FLOAT32
from relay.lib.cancellation import in_background

log = logging.getLogger(__name__)

_LOG_EVERY_S = 30.0
_logged_at = -_LOG_EVERY_S

KEY_PREFIX = "emb2:"  # a new layout of the value takes a new prefix
_COUNT = np.dtype("<u4")  # the item's tokens, before its vector


@dataclass(frozen=True)
class Hit:
    tokens: int
    vector: np.ndarray


def encode(tokens: int, vector: np.ndarray) -> bytes:
    return tokens.to_bytes(_COUNT.itemsize, "little") + vector.tobytes()


def decode(raw: bytes) -> Hit | None:
    """An entry as ``encode`` wrote it; None (a miss) for anything else."""
    size = len(raw) - _COUNT.itemsize
    if size <= 0 or size % FLOAT32.itemsize:
        return None
    tokens = int.from_bytes(raw[: _COUNT.itemsize], "little")
    return Hit(tokens, np.frombuffer(raw, dtype=FLOAT32, offset=_COUNT.itemsize))


def item_keys(
    items, *, namespace: str, model: str, dimensions: int | None, options: dict[str, str]
) -> list[str]:
    """Where each item's vector is kept: a digest of everything that decides
    the vector (the text or token ids themselves are never stored in clear).
    BLAKE2b, 128 bits, over one prefix and the item: 2,048 keys cost ~1 ms."""
    prefix = orjson.dumps([namespace, model, dimensions, sorted(options.items())])
    keys = []
    for item in items:
        digest = hashlib.blake2b(prefix, digest_size=16)
        if isinstance(item, str):
            digest.update(b"t" + item.encode())
        else:
            digest.update(b"i" + orjson.dumps(list(item)))
        keys.append(KEY_PREFIX + digest.hexdigest())
    return keys


@dataclass(frozen=True)
class Found:
    """A request's items looked up: each item's key, and what each distinct
    key found (None: a miss)."""

    keys: list[str]
    hits: dict[str, Hit | None]

    def known_tokens(self) -> dict[int, int]:
        """The token counts the cache knows, by the item's position."""
        hits = self.hits
        return {p: hit.tokens for p, key in enumerate(self.keys) if (hit := hits[key]) is not None}


async def find(keys: list[str]) -> Found:
    """Every item's entry (a key repeated in the request is fetched once)."""
    unique = list(dict.fromkeys(keys))
    return Found(keys, dict(zip(unique, await lookup(unique), strict=True)))


async def lookup(keys: list[str]) -> list[Hit | None]:
    """Each key's tokens and vector, or None (a miss; so is every key when
    the cache cannot be reached)."""
    client = pools.cache_redis()
    if client is None or not keys:
        return [None] * len(keys)
    try:
        found = await client.mget(keys)
    except REDIS_FAILURES as failure:
        _unreachable(failure)
        return [None] * len(keys)
    return [None if raw is None else decode(raw) for raw in found]


def store(entries: dict[str, bytes]) -> None:
    """Keep these entries (``encode``'s), in the background: the answer does not wait."""
    if entries and pools.cache_redis() is not None:
        in_background(_store(entries))


async def _store(entries: dict[str, bytes]) -> None:
    client = pools.cache_redis()
    try:
        async with client.pipeline(transaction=False) as pipe:
            for key, entry in entries.items():
                pipe.set(key, entry, ex=settings.RELAY_CACHE_TTL_S)
            await pipe.execute()
    except REDIS_FAILURES as failure:
        _unreachable(failure)
    except asyncio.CancelledError:
        pass  # the process is stopping; a lost write is a later miss


def _unreachable(failure: BaseException) -> None:
    global _logged_at
    now = time.monotonic()
    if now - _logged_at >= _LOG_EVERY_S:
        _logged_at = now
        log.warning("embedding cache unreachable (%s); serving without it", type(failure).__name__)
