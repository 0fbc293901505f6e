"""Sending one call to one channel, and sorting what went wrong into
"try another channel" and "the client's request is at fault".

``call`` passes a request through: the provider's answer is OpenAI's shape,
read whole up to ``RELAY_STREAM_FROM_BYTES`` (1 MiB); past that, the rest is
left on the connection for the pipeline to pass on as it arrives
(``Reply.rest``, relay/pipeline/streaming.py): a big batch of large vectors
runs to megabytes, which a process need not hold whole. ``embed`` is the
batch engine's call: the answer read whole and turned into vectors by the
provider.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import orjson
from django.conf import settings

from relay.connections import egress, pools
from relay.contract.errors import InvalidRequest
from relay.pipeline import causes
from relay.providers import PROVIDERS
from relay.providers.base import (
    ChannelMisconfigured,
    ChannelRoute,
    Embedded,
    Shard,
    UnreadableAnswer,
    UpstreamCall,
)

log = logging.getLogger(__name__)

# Statuses that say the request itself is wrong: the same request would fail
# on every channel, so it goes back to the client instead of failing over.
CLIENT_FAULT_STATUSES = {400, 413, 422}


class ChannelFailed(Exception):
    """Transient or channel-specific: another channel may well succeed."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        kind: str = "error",
        cause: str | None = causes.FAILURES,
        detail: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # A short, bounded label for metrics: timeout, connection, or the status.
        self.kind = kind
        # What channel health counts it as (relay/pipeline/causes.py), and
        # the upstream's own words for the channels page (no credential).
        self.cause = cause
        self.detail = detail


def error_message(body: bytes, *, limit: int = 1000) -> str | None:
    """The message of an upstream's error body, cut to ``limit``: OpenAI's
    and Google's shape (``error.message``), a bare ``error`` string, or a
    top-level ``message`` or ``detail`` (Cohere, Bedrock, Voyage, Jina...);
    None when the body says nothing readable."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    error = answer.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    for said in (error, answer.get("message"), answer.get("Message"), answer.get("detail")):
        if isinstance(said, str) and said:
            return said[:limit]
    return None


class Rest:
    """The part of an answer not read yet. It owns the upstream connection
    until ``close()``, which gives the connection back to the pool once the
    answer was read to its end, and drops it otherwise."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        # Time spent waiting for the upstream's bytes (the trace's upstream_ms).
        self.waited_s = 0.0

    async def next_chunk(self) -> bytes:
        """The next bytes that arrived; b"" at the end. Raises ChannelFailed."""
        started = time.perf_counter()
        try:
            with _failures_classified():
                return await self._response.content.readany()
        finally:
            self.waited_s += time.perf_counter() - started

    async def read(self) -> bytes:
        chunks = []
        while chunk := await self.next_chunk():
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


@dataclass
class Reply:
    """A channel's success, in OpenAI's shape: all of it in ``body``, or, for
    an answer larger than RELAY_STREAM_FROM_BYTES, its first part in
    ``body`` and the rest still to read (only from providers whose answers
    pass through unchanged)."""

    body: bytes
    rest: Rest | None = None

    async def whole(self) -> Reply:
        if self.rest is None:
            return self
        try:
            return Reply(self.body + await self.rest.read())
        finally:
            self.rest.close()


@contextlib.contextmanager
def _failures_classified() -> Iterator[None]:
    """Network failures as ChannelFailed: another channel may well succeed."""
    try:
        yield
    except TimeoutError as exc:
        raise ChannelFailed("timeout", kind="timeout") from exc
    except aiohttp.ClientError as exc:
        raise ChannelFailed(f"connection error: {type(exc).__name__}", kind="connection") from exc


async def call(channel: ChannelRoute, shard: Shard) -> Reply:
    """The OpenAI-shaped success of a provider that passes answers through;
    raises ChannelFailed or InvalidRequest."""
    provider = PROVIDERS[channel.kind]
    outgoing = _outgoing(channel, shard)
    response = None
    try:
        with _failures_classified():
            response = await _post(outgoing)
            status = response.status
            if status == 200 and provider.passes_through and not _small(response):
                reply = await _first_part(response)
                if reply.rest is not None:
                    response = None  # the reply owns it now
                    return reply
                body = reply.body
            else:
                body = await response.read()
    finally:
        if response is not None:
            response.release()

    if status == 200:
        return Reply(body)
    raise refusal(channel, status, body)


async def embed(channel: ChannelRoute, shard: Shard) -> Embedded:
    """The shard's vectors from the channel; raises ChannelFailed or
    InvalidRequest."""
    outgoing = _outgoing(channel, shard)
    response = None
    try:
        with _failures_classified():
            response = await _post(outgoing)
            status, body = response.status, await response.read()
            headers = response.headers
    finally:
        if response is not None:
            response.release()
    if status != 200:
        raise refusal(channel, status, body)
    try:
        return PROVIDERS[channel.kind].parse(body, shard, headers)
    except UnreadableAnswer as exc:
        raise ChannelFailed(f"unreadable answer: {exc}", kind="unreadable") from exc


async def _post(outgoing: UpstreamCall) -> aiohttp.ClientResponse:
    return await pools.http().post(
        outgoing.url, data=outgoing.body, headers=outgoing.headers, allow_redirects=False
    )


def _outgoing(channel: ChannelRoute, shard: Shard) -> UpstreamCall:
    try:
        outgoing = PROVIDERS[channel.kind].build(channel, shard)
    except ChannelMisconfigured as exc:
        # A credential the provider cannot use (a malformed key pair, say):
        # the channel's fault, worded by the provider without the secret.
        raise ChannelFailed(
            f"cannot build the call: {exc}",
            kind="misconfigured",
            cause=causes.CREDENTIAL,
            detail=str(exc),
        ) from exc
    try:
        egress.check_literal_host(outgoing.url)
    except egress.DestinationRefused as exc:
        log.error("channel %s: %s", channel.name, exc)
        raise ChannelFailed(str(exc), kind="refused_destination") from exc
    return outgoing


def refusal(channel: ChannelRoute, status: int, body: bytes) -> Exception:
    """What a failed call raises: the client's error, or the channel's."""
    blames_channel = getattr(PROVIDERS[channel.kind], "blames_channel", None)
    blamed = bool(blames_channel and blames_channel(status, body))
    if status in CLIENT_FAULT_STATUSES and not blamed:
        # The provider's own words help the client fix the request; the
        # channel's credential is never part of a 4xx body about the input.
        message = error_message(body) or "The upstream provider rejected the request."
        return InvalidRequest(message)
    # 401/403/404 mean this channel is misconfigured (key, deployment, model),
    # 429 and 5xx that it is busy or broken: all are worth another channel.
    said = error_message(body, limit=200) or ""
    if channel.credential:  # an upstream may echo what it was sent
        said = said.replace(channel.credential, "***")
    return ChannelFailed(
        f"upstream status {status}",
        status=status,
        kind=str(status),
        cause=causes.of_status(status, body, blamed_on_channel=blamed),
        detail=f"{status} {said}".strip(),
    )


def _small(response: aiohttp.ClientResponse) -> bool:
    length = response.content_length
    return length is not None and length <= settings.RELAY_STREAM_FROM_BYTES


async def _first_part(response: aiohttp.ClientResponse) -> Reply:
    """Read up to RELAY_STREAM_FROM_BYTES (an answer of unknown or larger
    size); the rest, if any, stays on the connection."""
    rest = Rest(response)
    chunks, size = [], 0
    while size <= settings.RELAY_STREAM_FROM_BYTES:
        chunk = await rest.next_chunk()
        if not chunk:
            return Reply(b"".join(chunks))
        chunks.append(chunk)
        size += len(chunk)
    first = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if response.content.at_eof():
        return Reply(first)
    return Reply(first, rest)
