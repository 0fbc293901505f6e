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
The lookup's reply is read into one buffer and its entries used where they
lie (relay/connections/bulk_replies.py).
Entries have a TTL (``RELAY_CACHE_TTL_S``) and live on a Redis of their
own (``CACHE_REDIS_URL``): that one evicts the least recently used when
full (its size cap), where the main Redis, which holds balances,
limits and the usage stream, never evicts anything. The cache never fails
a request: when it cannot be reached, every item is a miss (logged, at most
every ``_LOG_EVERY_S``), and its writes happen after the answer is built,
without the request waiting for them (through redis-py; the lookups through
``pools.cache_reader``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from dataclasses import dataclass

import numpy as np
import orjson
from django.conf import settings

from relay.connections import pools
from relay.connections.bulk_replies import Bulks
from relay.connections.pools import REDIS_FAILURES
from relay.contract.vectors import FLOAT32
from relay.lib.cancellation import in_background

log = logging.getLogger(__name__)

_LOG_EVERY_S = 30.0
_logged_at = -_LOG_EVERY_S

KEY_PREFIX = "emb2:"  # a new layout of the value takes a new prefix
_COUNT = struct.Struct("<I")  # the item's tokens, before its vector


def encode(tokens: int, vector: np.ndarray) -> bytes:
    return _COUNT.pack(tokens) + vector.tobytes()


def scope(*, namespace: str, model: str, dimensions: int | None, options: dict[str, str]) -> bytes:
    """Everything besides the item that decides its vector."""
    return orjson.dumps([namespace, model, dimensions, sorted(options.items())])


def item_keys(items, scope: bytes) -> list[str]:
    """Where each item's entry is kept: a digest of its ``scope`` and the
    item (the text or token ids themselves are never stored in clear).
    BLAKE2b, 128 bits: 2,048 keys cost ~1 ms."""
    start = hashlib.blake2b(scope, digest_size=16)
    keys = []
    for item in items:
        digest = start.copy()
        if isinstance(item, str):
            digest.update(b"t" + item.encode())
        else:
            digest.update(b"i" + orjson.dumps(list(item)))
        keys.append(KEY_PREFIX + digest.hexdigest())
    return keys


@dataclass(frozen=True)
class Found:
    """A request's items looked up in one ``scope``: each item's key and, by
    position, the vector the cache holds (its float32 bytes, a view into the
    reply: the 8 MiB of a fully cached 2,048-item request go from the socket
    to the answer's base64 without another copy) and the item's token count;
    None and 0 for a miss."""

    scope: bytes
    keys: list[str]
    vectors: list[memoryview | None]
    tokens: list[int]

    def known_tokens(self) -> dict[int, int]:
        """The token counts the cache knows, by the item's position."""
        tokens = self.tokens
        return {p: tokens[p] for p, vector in enumerate(self.vectors) if vector is not None}


async def find(items, scope: bytes) -> Found:
    """Every item's entry (an item repeated in the request is fetched once)."""
    keys = item_keys(items, scope)
    unique = list(dict.fromkeys(keys))
    vectors, tokens = await lookup(unique)
    if len(unique) < len(keys):
        at = {key: n for n, key in enumerate(unique)}
        vectors = [vectors[at[key]] for key in keys]
        tokens = [tokens[at[key]] for key in keys]
    return Found(scope, keys, vectors, tokens)


async def lookup(keys: list[str]) -> tuple[list[memoryview | None], list[int]]:
    """Each key's vector and token count: None and 0 for a miss (so is
    every key when the cache cannot be reached)."""
    client = pools.cache_reader()
    if client is None or not keys:
        return _misses(len(keys))
    try:
        found = await client.command(keys, b"MGET", *keys)
    except REDIS_FAILURES as failure:
        _unreachable(failure)
        return _misses(len(keys))
    return entries(found)


def _misses(count: int) -> tuple[list[memoryview | None], list[int]]:
    return [None] * count, [0] * count


def entries(found: Bulks) -> tuple[list[memoryview | None], list[int]]:
    """The vectors and token counts in an MGET's reply, read in place. A
    value that is not ``encode``'s (a count and whole float32s) is a miss."""
    offsets, lengths = found.offsets, found.lengths
    size = lengths - _COUNT.size
    hit = (size > 0) & (size % FLOAT32.itemsize == 0)
    tokens = np.zeros(len(lengths), dtype=np.uint32)
    if hit.any():
        at = offsets[hit][:, None] + np.arange(_COUNT.size)
        tokens[hit] = np.frombuffer(found.data, np.uint8)[at].view("<u4").ravel()
    data = found.data
    vectors = [
        data[start + _COUNT.size : start + length] if is_hit else None
        for start, length, is_hit in zip(
            offsets.tolist(), lengths.tolist(), hit.tolist(), strict=True
        )
    ]
    return vectors, tokens.tolist()


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
