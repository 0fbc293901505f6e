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
import base64
import time
from dataclasses import dataclass

import aiohttp
import orjson

from relay.catalog.routes import channel_route
from relay.connections import egress, pools
from relay.contract.tokens import count_text
from relay.contract.validation import EmbeddingRequest
from relay.models import Channel
from relay.pipeline import upstream
from relay.providers.base import ChannelRoute, UpstreamCall

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


def _dimensions(embedding: object) -> int | None:
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):  # base64 of float32s
        return len(base64.b64decode(embedding)) // 4
    return None


def probe(*, channel: Channel, model: str | None = None) -> ProbeResult:
    """Send one short input for ``model`` (default: the channel's first model)."""
    mapping = dict(channel.models.order_by("model").values_list("model", "upstream_model"))
    if not mapping:
        return ProbeResult(ok=False, model=model or "", error="The channel serves no models yet.")
    if model is None:
        model = next(iter(mapping))
    if model not in mapping:
        return ProbeResult(ok=False, model=model, error="The channel does not serve this model.")
    request = EmbeddingRequest(
        model=model, input=PROBE_INPUT, token_counts=[count_text(PROBE_INPUT)]
    )
    outgoing = channel.provider.build(_route(channel, model, mapping[model]), request)
    started = time.perf_counter()
    try:
        status, content = asyncio.run(_send(outgoing))
    except egress.DestinationRefused as exc:
        return _refused(model, exc)
    except TimeoutError:
        return ProbeResult(
            ok=False, model=model, latency_ms=_ms(started),
            error=f"No answer within {PROBE_TIMEOUT_S:.0f} s.",
        )
    except aiohttp.ClientError as exc:
        cause = getattr(exc, "os_error", None)
        if isinstance(cause, egress.DestinationRefused):  # raised by the guarded resolver
            return _refused(model, cause)
        return ProbeResult(
            ok=False, model=model, latency_ms=_ms(started),
            error=f"Connection error: {type(exc).__name__}",
        )
    latency_ms = _ms(started)
    if status != 200:
        message = _scrub(_upstream_message(content), channel.credential)
        return ProbeResult(
            ok=False, model=model, latency_ms=latency_ms, status=status,
            error=f"Upstream status {status}" + (f": {message}" if message else ""),
        )
    try:
        body = orjson.loads(channel.provider.to_openai(content, request))
        dimensions = _dimensions(body["data"][0]["embedding"])
        usage = body.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ProbeResult(
            ok=False, model=model, latency_ms=latency_ms, status=200,
            error="The upstream answered 200 with a body that is not an embeddings response.",
        )
    return ProbeResult(
        ok=True,
        model=model,
        latency_ms=latency_ms,
        status=200,
        dimensions=dimensions,
        prompt_tokens=usage.get("prompt_tokens") if isinstance(usage, dict) else None,
        total_tokens=usage.get("total_tokens") if isinstance(usage, dict) else None,
    )


def _refused(model: str, exc: Exception) -> ProbeResult:
    return ProbeResult(ok=False, model=model, error=f"Refused by the egress guard: {exc}.")


async def _send(outgoing: UpstreamCall) -> tuple[int, bytes]:
    egress.check_literal_host(outgoing.url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with pools.http().post(
                outgoing.url, data=outgoing.body, headers=outgoing.headers, allow_redirects=False
            ) as response:
                return response.status, await response.read()
    finally:
        # The pool belongs to this loop, which ends with the probe.
        await pools.http().close()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
