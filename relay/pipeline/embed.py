"""The /v1/embeddings request path, start to finish.

authenticate -> parse and validate -> model access -> (a cached group: the
items looked up in the cache) -> count tokens -> limits and hold (one Redis
step) -> forward with failover -> read usage -> settle the hold and hand the
usage event to the workers (one Redis step). Each step raises a RelayError
that the view turns into OpenAI's error envelope.

Forwarding takes one of two roads. A request that one channel takes in one
call exactly as the client sent it, to a provider that answers in OpenAI's
shape, with no cache, is passed through: its answer's bytes go back with
``usage`` and ``model`` read and rewritten in place, never decoded (the
common case, and the fastest). Any other request goes through the batch
engine (relay/pipeline/batch.py): split to fit, cached, converted and merged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from django.conf import settings

from relay.catalog.keys import KeyContext
from relay.catalog.routes import GroupRoutes, ModelRoute, group_routes
from relay.contract import passthrough, validation
from relay.contract.errors import (
    InvalidRequest,
    ModelNotFound,
    ServiceUnavailable,
    UpstreamFailed,
)
from relay.contract.validation import EmbeddingRequest
from relay.lib import metrics
from relay.pipeline import (
    answer_budget,
    auth,
    batch,
    cache,
    channel_health,
    gate,
    shards,
    upstream,
)
from relay.pipeline.outcome import Outcome
from relay.pipeline.streaming import Streamed
from relay.pipeline.trace import Trace
from relay.providers.base import ChannelRoute

log = logging.getLogger(__name__)

# How many of the request's items the embedding cache answered (with the
# group's cache on).
CACHE_HITS_HEADER = "x-relay-cached-items"


@dataclass
class Served:
    headers: dict[str, str]
    # The answer whole, with its settle already sent to Redis: await
    # ``settled`` once the response is sent (relay/pipeline/gate.py: Entry.settle)...
    body: bytes = b""
    settled: Awaitable[None] | None = None
    # ...or, for an answer too big to hold whole, the answer as it arrives.
    streamed: Streamed | None = None


async def embed(*, authorization: str | None, body: bytes, client_ip: str, trace: Trace) -> Served:
    key = await auth.authenticate(authorization, client_ip)
    trace.tenant_id, trace.key_prefix = key.tenant_id, key.prefix
    data = validation.parse_body(body)
    model = validation.read_model(data)
    trace.model = model
    routes, route = await model_route(key, model)
    cache_namespace = routes.cache.namespace(key.tenant_id) if routes.cache else None
    request = validation.read_uncounted(data, model)
    found = None
    if cache_namespace is not None:
        # Before counting: the cache keeps each item's tokens, so the items it
        # holds are not counted again (the hold and limits still see every token).
        found = await batch.look_up(route.channels, request, cache_namespace=cache_namespace)
    await validation.count(request, found.known_tokens() if found else None)

    entry = await gate.enter(
        key=key,
        routes=routes,
        route=route,
        request=request,
        client_ip=client_ip,
        request_id=trace.request_id,
    )
    outcome = Outcome(trace, key, route, request, entry)
    budget, share = answer_budget.budget(), 0
    try:
        share = await budget.take(answer_budget.share(request))
        reply, channel = await forward(
            route, request, trace, cache_namespace=cache_namespace, found=found
        )
        if isinstance(reply, batch.Merged):
            answer, event = outcome.finish_merged(reply)
            headers = {**entry.headers, CACHE_HITS_HEADER: str(reply.cached_items)}
            budget.give(share)
            return Served(headers, body=answer, settled=entry.settle(event))
        if reply.rest is not None:
            return Served(
                entry.headers,
                streamed=Streamed(
                    reply, channel, outcome, upstream_closed=lambda: budget.give(share)
                ),
            )
        answer, event = outcome.finish(reply.body, channel)
        if request.wants_base64 and passthrough.is_float_encoded(answer):
            answer = passthrough.to_base64(answer)
    except BaseException as failure:
        # Failed or cancelled (client went away): the hold is released and
        # the request costs nothing.
        budget.give(share)
        await outcome.fail(failure)
        raise
    # The answer goes to the client's socket as soon as this returns.
    budget.give(share)
    return Served(entry.headers, body=answer, settled=entry.settle(event))


async def model_route(key: KeyContext, model: str) -> tuple[GroupRoutes, ModelRoute]:
    routes = await group_routes(key.group_id)
    route = routes.models.get(model) if routes else None
    if route is None or not key.may_use(model):
        raise ModelNotFound(model)
    return routes, route


def _unservable(unfit: shards.Unfit, request: EmbeddingRequest) -> InvalidRequest:
    """OpenAI's 400 for a request no channel of its model can serve."""
    if unfit.param == "dimensions":
        return InvalidRequest(
            "This model does not support specifying dimensions.", param="dimensions"
        )
    return InvalidRequest(
        f"Invalid '{unfit.param}': maximum input length is {unfit.limit} tokens for "
        f"{request.model}.",
        param=unfit.param,
        code="invalid_value",
    )


async def forward(
    route: ModelRoute,
    request: EmbeddingRequest,
    trace: Trace,
    *,
    cache_namespace: str | None,
    found: cache.Found | None = None,
) -> tuple[upstream.Reply | batch.Merged, ChannelRoute | None]:
    """Try channels until one answers; a channel that failed is not tried
    again, and one that cannot serve the request is passed over.

    A passed-through answer comes back as a ``Reply``: a big one with its
    rest unread, to be passed on as it arrives, unless it must be read whole
    first (its fields before the vectors name the model or usage, or its
    floats are to become base64). The batch engine's comes back ``Merged``
    (``found``: the cache's answer for the items, looked up already)."""
    if not route.channels:
        raise ServiceUnavailable(
            f"No upstream channel is available for `{route.model}` right now. Please retry later."
        )
    tried: set[int] = set()
    while len(tried) < settings.RELAY_MAX_ATTEMPTS:
        fitted, unfit = shards.next_fit(route.channels, request, tried)
        if fitted is None:
            if not tried and unfit is not None:
                raise _unservable(unfit, request)
            break
        channel = fitted.channel
        if cache_namespace is not None or not (
            fitted.passes_through and shards.fits_one_call(fitted, request)
        ):
            merged = await batch.run(
                channels=route.channels,
                request=request,
                trace=trace,
                first=fitted,
                tried=tried,
                cache_namespace=cache_namespace,
                found=found,
            )
            return merged, merged.channel
        tried.add(channel.channel_id)
        trace.attempts, trace.channel = len(tried), channel.name
        called = time.perf_counter()
        try:
            reply = await upstream.call(channel, shards.whole(fitted, request))
            if reply.rest is not None and not passthrough.streamable(
                reply.body, wants_base64=request.wants_base64
            ):
                reply = await reply.whole()
        except upstream.ChannelFailed as failure:
            channel_health.failed(trace, channel, failure)
            continue
        finally:
            elapsed = time.perf_counter() - called
            trace.upstream_s += elapsed
            metrics.UPSTREAM_SECONDS.labels(channel=channel.name).observe(elapsed)
        channel_health.tally().served(channel.channel_id)
        return reply, channel
    raise UpstreamFailed(
        f"The upstream provider failed to serve `{route.model}` after {len(tried)} "
        "attempt(s). Please retry."
    )
