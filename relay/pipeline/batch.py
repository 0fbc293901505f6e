"""The batch engine: a request that cannot go to one channel as the client
sent it is served item by item, and answered in OpenAI's shape with
``data[i]`` the vector of ``input[i]``.

1. With the group's cache on, every item is looked up (relay/pipeline/cache.py);
   an item sent twice in one request goes upstream once.
2. The misses are split into calls that fit the channel (relay/pipeline/shards.py)
   and sent concurrently: at most ``RELAY_SHARD_CONCURRENCY`` calls of one
   request, and ``RELAY_CHANNEL_CONCURRENCY`` of one process to one channel.
3. A call that fails is sent again on another channel, split again for that
   channel's limits, like any attempt (at most ``RELAY_MAX_ATTEMPTS`` channels
   for the items of one call). If a call's items find no channel, the whole
   request fails: the client gets all of the answer or an error, never part.
4. Vectors are cut to ``dimensions`` where the channel's model is marked
   truncatable and its provider cannot do it, and put back by position.

Every vector is placed by the position of the item it answers, never by the
order in which answers arrive or by what an upstream says its index is
(LiteLLM returned one input's vector at another's index when a batch mixed
cached and uncached items: LiteLLM #29284, #2990).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from billing.models import UsageRecord
from relay.contract import vectors as wire
from relay.contract.errors import InvalidRequest, RelayError, UpstreamFailed
from relay.contract.validation import EmbeddingRequest
from relay.lib import metrics
from relay.pipeline import cache, channel_health, routing, shards, upstream
from relay.pipeline.trace import Trace
from relay.providers.base import ChannelRoute

_channel_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Merged:
    """Every item's vector, in the request's order, and what it cost."""

    # float32 rows: an upstream's, or a cached one's bytes (relay/pipeline/cache.py)
    vectors: list[np.ndarray | memoryview]
    tokens: int = 0  # billed at the full price: the upstream's figures, else our count
    token_source: str = UsageRecord.TokenSource.PROMPT_TOKENS
    cached_items: int = 0
    cached_tokens: int = 0  # billed at the cache price
    # Items each channel embedded, by channel id.
    served_items: Counter = field(default_factory=Counter)
    channels: dict[int, ChannelRoute] = field(default_factory=dict)

    @property
    def channel(self) -> ChannelRoute | None:
        """The channel that embedded the most items (None: all came from the cache)."""
        if not self.served_items:
            return None
        return self.channels[self.served_items.most_common(1)[0][0]]

    def answer(self, request: EmbeddingRequest) -> bytes:
        return wire.answer(
            self.vectors,
            model=request.model,
            tokens=self.tokens + self.cached_tokens,
            as_base64=request.wants_base64,
        )


@dataclass
class _Run:
    request: EmbeddingRequest
    channels: tuple[ChannelRoute, ...]
    trace: Trace
    merged: Merged
    slots: asyncio.Semaphore


async def run(
    *,
    channels: tuple[ChannelRoute, ...],
    request: EmbeddingRequest,
    trace: Trace,
    first: shards.Fit,
    tried: set[int],
    cache_namespace: str | None,
    found: cache.Found | None = None,
) -> Merged:
    """Serve ``request`` starting with ``first`` (its channel chosen by the
    pipeline; ``tried`` are the channels that failed it already). ``found``:
    the cache's answer for the request's items, if ``look_up`` asked it
    already (used when ``first``'s channel keys them the same way). Raises
    UpstreamFailed when some items find no channel, or the client's error."""
    items, counts = request.items, request.token_counts
    merged = Merged([None] * len(items))  # type: ignore[list-item]
    keys: list[str] = []
    pending = list(range(len(items)))
    if cache_namespace is not None:
        scope = _scope(first.channel, request, cache_namespace)
        if found is None or found.scope != scope:
            found = await cache.find(items, scope)
        keys = found.keys
        pending = _from_cache(merged, found, counts)
    firsts, copies = _first_occurrences(pending, keys)
    started = time.perf_counter()
    if firsts:
        work = _Run(
            request, channels, trace, merged, asyncio.Semaphore(settings.RELAY_SHARD_CONCURRENCY)
        )
        await _serve(work, first, firsts, tried)
        trace.upstream_s += time.perf_counter() - started
    for position, original in copies:
        merged.vectors[position] = merged.vectors[original]
        merged.cached_items += 1
        merged.cached_tokens += counts[position]
    if keys:
        cache.store({keys[p]: cache.encode(counts[p], merged.vectors[p]) for p in firsts})
    return merged


async def look_up(
    channels: tuple[ChannelRoute, ...], request: EmbeddingRequest, *, cache_namespace: str
) -> cache.Found | None:
    """The request's items looked up in the cache, keyed for the channel
    routing picks first; asked before the tokens are counted, since each
    entry carries its item's count (a request served from the cache needs no
    tokenizer pass). ``run`` reuses the answer when its own first channel
    keys the items the same way."""
    channel = routing.next_channel(channels, set())
    if channel is None:
        return None
    return await cache.find(request.items, _scope(channel, request, cache_namespace))


def _scope(channel: ChannelRoute, request: EmbeddingRequest, cache_namespace: str) -> bytes:
    return cache.scope(
        namespace=cache_namespace,
        model=channel.upstream_model,
        dimensions=request.dimensions,
        options=shards.options(channel, request),
    )


def _from_cache(merged: Merged, found: cache.Found, counts: list[int]) -> list[int]:
    """Fill in the hits; the positions still to embed."""
    misses = []
    for position, vector in enumerate(found.vectors):
        if vector is None:
            misses.append(position)
        else:
            merged.vectors[position] = vector
            merged.cached_items += 1
            merged.cached_tokens += counts[position]
    return misses


def _first_occurrences(positions: list[int], keys: list[str]) -> tuple[list[int], list[tuple]]:
    """Without the cache every item goes upstream; with it, an item repeated
    in the request goes once, and its repeats copy its vector."""
    if not keys:
        return positions, []
    first_at: dict[str, int] = {}
    firsts, copies = [], []
    for position in positions:
        original = first_at.setdefault(keys[position], position)
        if original == position:
            firsts.append(position)
        else:
            copies.append((position, original))
    return firsts, copies


async def _serve(work: _Run, fitted: shards.Fit, positions: list[int], tried: set[int]) -> None:
    """Embed the items at ``positions`` through ``fitted``'s channel, in as
    few calls as fit, failing over call by call."""
    calls = list(shards.split(fitted, work.request, positions))
    if len(calls) == 1:
        await _call(work, fitted, *calls[0], tried)
        return
    try:
        async with asyncio.TaskGroup() as group:
            for batch, shard in calls:
                group.create_task(_call(work, fitted, batch, shard, tried))
    except BaseExceptionGroup as failed:
        # One call's failure cancelled the others: the client gets its error.
        raise _first_error(failed) from None


def _first_error(group: BaseExceptionGroup) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if isinstance(error, RelayError):
            return error
    return group.exceptions[0]


async def _call(work: _Run, fitted: shards.Fit, batch: list[int], shard, tried: set[int]) -> None:
    channel = fitted.channel
    called = time.perf_counter()
    try:
        async with work.slots, _slots_of(channel):
            embedded = await upstream.embed(channel, shard)
    except upstream.ChannelFailed as failure:
        channel_health.failed(work.trace, channel, failure)
        await _serve_elsewhere(work, batch, tried | {channel.channel_id})
        return
    finally:
        metrics.UPSTREAM_SECONDS.labels(channel=channel.name).observe(time.perf_counter() - called)
    channel_health.tally().served(channel.channel_id)
    found = embedded.vectors
    if fitted.truncate_to is not None:
        if found.shape[1] < fitted.truncate_to:
            raise InvalidRequest(
                f"Invalid value for 'dimensions': {fitted.truncate_to}. It must be at most "
                f"{found.shape[1]} for {work.request.model}.",
                param="dimensions",
                code="invalid_value",
            )
        found = wire.truncated(found, fitted.truncate_to)
    merged = work.merged
    for row, position in enumerate(batch):
        merged.vectors[position] = found[row]
    if embedded.tokens is None:
        merged.tokens += sum(work.request.token_counts[p] for p in batch)
        merged.token_source = UsageRecord.TokenSource.COUNTED
    else:
        merged.tokens += embedded.tokens
    merged.served_items[channel.channel_id] += len(batch)
    merged.channels[channel.channel_id] = channel
    work.trace.channel = channel.name


async def _serve_elsewhere(work: _Run, batch: list[int], tried: set[int]) -> None:
    """The items of a failed call, on the next channel that can take them."""
    if len(tried) < settings.RELAY_MAX_ATTEMPTS:
        fitted, _unfit = shards.next_fit(work.channels, work.request, tried)
        if fitted is not None:
            work.trace.attempts = max(work.trace.attempts, len(tried) + 1)
            await _serve(work, fitted, batch, tried)
            return
    raise UpstreamFailed(
        f"The upstream provider failed to serve `{work.request.model}` after {len(tried)} "
        "attempt(s). Please retry."
    )


def _slots_of(channel: ChannelRoute) -> asyncio.Semaphore:
    """This process's calls in flight to one channel (per event loop)."""
    loop = asyncio.get_running_loop()
    per_loop = _channel_slots.get(loop)
    if per_loop is None:
        per_loop = _channel_slots[loop] = {}
    slots = per_loop.get(channel.channel_id)
    if slots is None:
        slots = per_loop[channel.channel_id] = asyncio.Semaphore(settings.RELAY_CHANNEL_CONCURRENCY)
    return slots
