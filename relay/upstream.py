"""Sending one request to one channel, and sorting what went wrong into
"try another channel" and "the client's request is at fault"."""

from __future__ import annotations

import logging

import aiohttp
import orjson

from relay import connections, egress
from relay.catalog import ChannelRoute
from relay.errors import InvalidRequest
from relay.providers import PROVIDERS
from relay.validation import EmbeddingRequest

log = logging.getLogger(__name__)

# Statuses that say the request itself is wrong: the same request would fail
# on every channel, so it goes back to the client instead of failing over.
CLIENT_FAULT_STATUSES = {400, 413, 422}


class ChannelFailed(Exception):
    """Transient or channel-specific: another channel may well succeed."""

    def __init__(self, reason: str, *, status: int | None = None, kind: str = "error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # A short, bounded label for metrics: timeout, connection, or the status.
        self.kind = kind


def error_message(body: bytes, *, limit: int = 1000) -> str | None:
    """The message of an upstream's error body (OpenAI's shape or a bare
    string), cut to ``limit``; None when the body says nothing readable."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:limit]
    if isinstance(error, str):
        return error[:limit]
    return None


async def call(channel: ChannelRoute, request: EmbeddingRequest) -> bytes:
    """The channel's success body in OpenAI's shape; raises ChannelFailed or
    InvalidRequest."""
    provider = PROVIDERS[channel.kind]
    outgoing = provider.build(channel, request)
    try:
        egress.check_literal_host(outgoing.url)
        async with connections.http().post(
            outgoing.url, data=outgoing.body, headers=outgoing.headers, allow_redirects=False
        ) as response:
            body = await response.read()
            status = response.status
    except egress.DestinationRefused as exc:
        log.error("channel %s: %s", channel.name, exc)
        raise ChannelFailed(str(exc), kind="refused_destination") from exc
    except TimeoutError as exc:
        raise ChannelFailed("timeout", kind="timeout") from exc
    except aiohttp.ClientError as exc:
        raise ChannelFailed(f"connection error: {type(exc).__name__}", kind="connection") from exc

    if status == 200:
        return provider.to_openai(body, request)
    if status in CLIENT_FAULT_STATUSES:
        # The provider's own words help the client fix the request; the
        # channel's credential is never part of a 4xx body about the input.
        message = error_message(body) or "The upstream provider rejected the request."
        raise InvalidRequest(message)
    # 401/403/404 mean this channel is misconfigured (key, deployment, model),
    # 429 and 5xx that it is busy or broken: all are worth another channel.
    raise ChannelFailed(f"upstream status {status}", status=status, kind=str(status))
