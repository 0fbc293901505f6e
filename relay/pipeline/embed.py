"""The /v1/embeddings request path, start to finish.

authenticate -> parse and validate -> model access -> limits and hold (one
Redis step) -> forward with failover -> read usage -> settle the hold and hand
the usage event to the workers (one Redis step). Each step raises a
RelayError that the view turns into OpenAI's error envelope.
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
from relay.contract.errors import ModelNotFound, ServiceUnavailable, UpstreamFailed
from relay.contract.validation import EmbeddingRequest
from relay.lib import metrics
from relay.pipeline import answer_budget, auth, gate, routing, upstream
from relay.pipeline.outcome import Outcome
from relay.pipeline.streaming import Streamed
from relay.pipeline.trace import Trace
from relay.providers.base import ChannelRoute

log = logging.getLogger(__name__)


@dataclass
class Served:
    headers: dict[str, str]
    # The answer whole, with its settle already sent to Redis: await
    # ``settled`` once the response is sent (relay/pipeline/gate.py: Entry.settle)...
    body: bytes = b""
    settled: Awaitable[None] | None = None
    # ...or, for an answer too big to hold whole, the answer as it arrives.
    streamed: Streamed | None = None


async def embed(
    *, authorization: str | None, body: bytes, client_ip: str, trace: Trace
) -> Served:
    key = await auth.authenticate(authorization, client_ip)
    trace.tenant_id, trace.key_prefix = key.tenant_id, key.prefix
    data = validation.parse_body(body)
    model = validation.read_model(data)
    trace.model = model
    routes, route = await model_route(key, model)
    request = await validation.read_request(data, model)

    entry = await gate.enter(
        key=key, routes=routes, route=route, request=request, client_ip=client_ip,
        request_id=trace.request_id,
    )
    outcome = Outcome(trace, key, route, request, entry)
    budget, share = answer_budget.budget(), 0
    try:
        share = await budget.take(answer_budget.share(request))
        reply, channel = await forward(route, request, trace)
        if reply.rest is not None:
            return Served(entry.headers, streamed=Streamed(
                reply, channel, outcome, upstream_closed=lambda: budget.give(share)
            ))
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


async def forward(
    route: ModelRoute, request: EmbeddingRequest, trace: Trace
) -> tuple[upstream.Reply, ChannelRoute]:
    """Try channels until one answers; a channel that failed is not tried again.

    A big answer comes back with its rest unread, to be passed on as it
    arrives, unless it must be read whole first: its fields before the
    vectors name the model or usage, or its floats are to become base64."""
    if not route.channels:
        raise ServiceUnavailable(
            f"No upstream channel is available for `{route.model}` right now. Please retry later."
        )
    tried: set[int] = set()
    for _attempt in range(settings.RELAY_MAX_ATTEMPTS):
        channel = routing.next_channel(route.channels, tried)
        if channel is None:
            break
        tried.add(channel.channel_id)
        trace.attempts, trace.channel = len(tried), channel.name
        called = time.perf_counter()
        try:
            reply = await upstream.call(channel, request)
            if reply.rest is not None and not passthrough.streamable(
                reply.body, wants_base64=request.wants_base64
            ):
                reply = await reply.whole()
        except upstream.ChannelFailed as failure:
            trace.channel_failed(channel.channel_id, channel.name, failure.reason, failure.kind)
            continue
        finally:
            elapsed = time.perf_counter() - called
            trace.upstream_s += elapsed
            metrics.UPSTREAM_SECONDS.labels(channel=channel.name).observe(elapsed)
        return reply, channel
    raise UpstreamFailed(
        f"The upstream provider failed to serve `{route.model}` after {len(tried)} "
        "attempt(s). Please retry."
    )
