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

from billing.models import UsageRecord
from billing.usage_events import UsageEvent
from relay import (
    answer_budget,
    auth,
    catalog,
    gate,
    metrics,
    passthrough,
    routing,
    upstream,
    validation,
)
from relay.auth import KeyContext
from relay.catalog import ChannelRoute, GroupRoutes, ModelRoute
from relay.errors import ModelNotFound, ServiceUnavailable, UpstreamFailed
from relay.streaming import Streamed
from relay.trace import Trace
from relay.validation import EmbeddingRequest

log = logging.getLogger(__name__)


@dataclass
class Served:
    headers: dict[str, str]
    # The answer whole, with its settle already sent to Redis: await
    # ``settled`` once the response is sent (relay/gate.py: Entry.settle)...
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


@dataclass
class Outcome:
    """How a request let through ends: settled from its answer, or failed."""

    trace: Trace
    key: KeyContext
    route: ModelRoute
    request: EmbeddingRequest
    entry: gate.Entry

    def finish(self, answer: bytes, channel: ChannelRoute) -> tuple[bytes, UsageEvent]:
        """The answer as the client gets it (usage filled in, the model it
        asked for) and its usage event. ``answer`` may be the tail of a
        streamed answer: everything read or changed here is in it."""
        request = self.request
        tokens, source, answer = settle_usage(answer, request)
        self.trace.tokens = tokens
        served_model = passthrough.read_model(answer) or channel.upstream_model
        if served_model != request.model:
            answer = passthrough.with_model(answer, request.model)
        event = _event(self.trace, self.key, self.route, request, channel, served_model,
                       tokens, source)
        return answer, event

    async def fail(self, failure: BaseException | None) -> None:
        """Release the hold; note a request no channel served (cost 0) for
        the channels' error rates."""
        event = None
        if isinstance(failure, UpstreamFailed):
            event = _event(self.trace, self.key, self.route, self.request, None, "", 0,
                           "counted", failed=True)
        await self.entry.cancel(event)


async def model_route(key: KeyContext, model: str) -> tuple[GroupRoutes, ModelRoute]:
    routes = await catalog.group_routes(key.group_id)
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


def settle_usage(reply: bytes, request: EmbeddingRequest) -> tuple[int, str, bytes]:
    """The tokens to bill and where the figure came from; fills in ``usage``
    when the upstream left it out, so the client always gets it.

    Order (as relays bill): upstream prompt_tokens, then total_tokens, then our
    own count; a zero counts as missing, since some providers report 0.
    """
    prompt_tokens, total_tokens = passthrough.read_usage(reply)
    counted = request.total_tokens
    if prompt_tokens:
        tokens, source = prompt_tokens, UsageRecord.TokenSource.PROMPT_TOKENS
    else:
        if total_tokens:
            tokens, source = total_tokens, UsageRecord.TokenSource.TOTAL_TOKENS
        else:
            tokens, source = counted, UsageRecord.TokenSource.COUNTED
        # SDKs read prompt_tokens: give the client the figure it is billed.
        reply = passthrough.with_usage(reply, prompt_tokens=tokens, total_tokens=tokens)
    if tokens != counted:
        log.info("upstream billed %s tokens where we counted %s (%s)", tokens, counted, source)
    return tokens, source, reply


def _event(
    trace: Trace,
    key: KeyContext,
    route: ModelRoute,
    request: EmbeddingRequest,
    channel: ChannelRoute | None,
    served_model: str,
    tokens: int,
    source: str,
    *,
    failed: bool = False,
) -> UsageEvent:
    return UsageEvent(
        request_id=trace.request_id,
        tenant_id=key.tenant_id,
        api_key_id=key.key_id,
        group_id=key.group_id,
        channel_id=channel.channel_id if channel else None,
        model=request.model,
        served_model=served_model,
        input_count=request.input_count,
        counted_tokens=request.total_tokens,
        tokens=tokens,
        token_source=source,
        price_per_mtok_nanos=route.price_per_mtok_nanos,
        latency_ms=int((time.perf_counter() - trace.started) * 1000),
        status=UsageRecord.Status.FAILED if failed else UsageRecord.Status.SERVED,
        end_user=request.user or "",
        created_ms=int(time.time() * 1000),
        failed_channel_ids=list(trace.failed_channel_ids),
    )
