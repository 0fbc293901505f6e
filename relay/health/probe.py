"""The channel "test" button: one real embeddings request through one channel.

The request is built by the channel's provider, as the relay builds it, and
sent through the relay's own upstream pool (relay.connections.pools), so the
egress guard (relay/connections/egress.py) applies exactly as it does to clients'
requests: a test cannot reach an address the relay may not. It runs on a
loop of its own (``asyncio.run``), outside any transaction, with a total
timeout. The result says what an operator needs to know: did it answer, how
fast, how many dimensions, what usage it reported, or what went wrong. The
credential never appears in it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from relay.catalog.routes import channel_route
from relay.connections import egress, pools
from relay.contract import passthrough
from relay.models import Channel
from relay.pipeline import upstream
from relay.providers.base import (
    ChannelMisconfigured,
    ChannelRoute,
    Shard,
    UnreadableAnswer,
    UpstreamCall,
)

PROBE_INPUT = "The quick brown fox jumps over the lazy dog."
# A person is waiting on the page: give up sooner than the relay would.
PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    model: str
    latency_ms: int | None = None
    status: int | None = None
    dimensions: int | None = None
    prompt_tokens: int | None = None
    total_tokens: int | None = None
    error: str = ""


def _route(channel: Channel, model: str, upstream_model: str) -> ChannelRoute:
    return channel_route(channel, upstream_model or model)


def _scrub(text: str, credential: str) -> str:
    # An upstream may echo what it was sent; the credential must not reach the page.
    return text.replace(credential, "***") if credential else text


def _upstream_message(body: bytes) -> str:
    message = upstream.error_message(body, limit=500)
    return message if message is not None else body[:200].decode("utf-8", "replace")


def probe(*, channel: Channel, model: str | None = None) -> ProbeResult:
    """Send one short input for ``model`` (default: the channel's first model)."""
    mapping = dict(channel.models.order_by("model").values_list("model", "upstream_model"))
    if not mapping:
        return ProbeResult(ok=False, model=model or "", error="The channel serves no models yet.")
    if model is None:
        model = next(iter(mapping))
    if model not in mapping:
        return ProbeResult(ok=False, model=model, error="The channel does not serve this model.")
    route = _route(channel, model, mapping[model])
    # One short text, in the provider's own dialect (an embeddings call, never
    # a chat call: a chat-only health check disabled every embeddings channel
    # of one-api, #2177).
    shard = Shard(
        model=route.upstream_model, items=(PROBE_INPUT,), input=PROBE_INPUT, options=route.options
    )
    started = time.perf_counter()
    try:
        outgoing = channel.provider.build(route, shard)
    except ChannelMisconfigured as exc:
        return ProbeResult(ok=False, model=model, error=f"Cannot build the call: {exc}")
    try:
        status, content, headers = asyncio.run(_send(outgoing))
    except egress.DestinationRefused as exc:
        return _refused(model, exc)
    except TimeoutError:
        return ProbeResult(
            ok=False,
            model=model,
            latency_ms=_ms(started),
            error=f"No answer within {PROBE_TIMEOUT_S:.0f} s.",
        )
    except aiohttp.ClientError as exc:
        cause = getattr(exc, "os_error", None)
        if isinstance(cause, egress.DestinationRefused):  # raised by the guarded resolver
            return _refused(model, cause)
        return ProbeResult(
            ok=False,
            model=model,
            latency_ms=_ms(started),
            error=f"Connection error: {type(exc).__name__}",
        )
    latency_ms = _ms(started)
    if status != 200:
        message = _scrub(_upstream_message(content), channel.credential)
        return ProbeResult(
            ok=False,
            model=model,
            latency_ms=latency_ms,
            status=status,
            error=f"Upstream status {status}" + (f": {message}" if message else ""),
        )
    try:
        embedded = channel.provider.parse(content, shard, headers)
    except UnreadableAnswer:
        return ProbeResult(
            ok=False,
            model=model,
            latency_ms=latency_ms,
            status=200,
            error="The upstream answered 200 with a body that is not an embeddings response.",
        )
    prompt_tokens = total_tokens = embedded.tokens
    if channel.provider.passes_through:  # OpenAI's shape says both
        prompt_tokens, total_tokens = passthrough.read_usage(content)
    return ProbeResult(
        ok=True,
        model=model,
        latency_ms=latency_ms,
        status=200,
        dimensions=embedded.vectors.shape[1],
        prompt_tokens=prompt_tokens,
        total_tokens=total_tokens,
    )


def _refused(model: str, exc: Exception) -> ProbeResult:
    return ProbeResult(ok=False, model=model, error=f"Refused by the egress guard: {exc}.")


async def _send(outgoing: UpstreamCall) -> tuple[int, bytes, dict[str, str]]:
    egress.check_literal_host(outgoing.url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with pools.http().post(
                outgoing.url, data=outgoing.body, headers=outgoing.headers, allow_redirects=False
            ) as response:
                return response.status, await response.read(), dict(response.headers)
    finally:
        # The pool belongs to this loop, which ends with the probe.
        await pools.http().close()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
