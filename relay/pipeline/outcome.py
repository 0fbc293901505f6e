"""How a request let through ends: settled from the upstream's answer (the
tokens it bills, the answer as the client gets it, its usage event), or
failed (the hold released, a failed request noted for the channels' error
rates).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from billing.models import UsageRecord
from billing.usage_events import UsageEvent
from relay.catalog.keys import KeyContext
from relay.catalog.routes import ModelRoute
from relay.contract import passthrough
from relay.contract.errors import UpstreamFailed
from relay.contract.validation import EmbeddingRequest
from relay.pipeline import gate
from relay.pipeline.batch import Merged
from relay.pipeline.trace import Trace
from relay.providers.base import ChannelRoute

log = logging.getLogger(__name__)


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
        event = _event(
            self.trace, self.key, self.route, request, channel, served_model, tokens, source
        )
        return answer, event

    def finish_merged(self, merged: Merged) -> tuple[bytes, UsageEvent]:
        """The batch engine's answer and its usage event: the items embedded
        at the full price, those from the cache at the cache price."""
        channel = merged.channel
        self.trace.tokens = merged.tokens + merged.cached_tokens
        event = _event(
            self.trace,
            self.key,
            self.route,
            self.request,
            channel,
            channel.upstream_model if channel else self.request.model,
            merged.tokens,
            merged.token_source,
            cached_items=merged.cached_items,
            cached_tokens=merged.cached_tokens,
        )
        return merged.answer(self.request), event

    async def fail(self, failure: BaseException | None) -> None:
        """Release the hold; note a request no channel served (cost 0) for
        the channels' error rates."""
        event = None
        if isinstance(failure, UpstreamFailed):
            event = _event(
                self.trace, self.key, self.route, self.request, None, "", 0, "counted", failed=True
            )
        await self.entry.cancel(event)


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
    cached_items: int = 0,
    cached_tokens: int = 0,
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
        cached_items=cached_items,
        cached_tokens=cached_tokens,
        cached_price_per_mtok_nanos=route.cached_price_per_mtok_nanos if cached_items else 0,
    )
