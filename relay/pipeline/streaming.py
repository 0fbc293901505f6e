"""Passing a big answer to the client as it arrives.

An answer larger than RELAY_STREAM_FROM_BYTES is read whole only up to that
size (relay/pipeline/upstream.py); the rest goes on to the client piece by piece, so
a process holds a few reads of it at a time rather than all of it: a batch
of float vectors is ~21 bytes a number, megabytes for a large batch. The
pipeline (relay/pipeline/embed.py) decides which answers may be streamed and
settles or fails the request through its ``Outcome`` (relay/pipeline/outcome.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from relay.contract.errors import UpstreamFailed
from relay.pipeline import upstream
from relay.pipeline.outcome import Outcome
from relay.providers.base import ChannelRoute


class Streamed:
    """A served answer too big to hold whole, passed on as it arrives.
    Iterate it for the pieces to send, then await ``settled``; ``aclose()``
    it however the response ends.

    The last TAIL_BYTES are held back until the upstream is done: ``model``
    and ``usage`` follow the vectors (``passthrough.streamable``), so the
    request is settled from them, and the tail rewritten, before the client
    gets the end. An upstream that fails midway cannot be failed over any
    more: the hold is released and UpstreamFailed raised (the client's
    connection is then cut, since its 200 has gone out).
    """

    TAIL_BYTES = 16 * 1024

    def __init__(
        self,
        reply: upstream.Reply,
        channel: ChannelRoute,
        outcome: Outcome,
        *,
        upstream_closed: Callable[[], None],
    ) -> None:
        """``upstream_closed`` is called once, when the upstream's side is over
        (read to its end, or given up)."""
        self._held = reply.body
        self._rest = reply.rest
        self._channel = channel
        self._outcome = outcome
        self._upstream_closed = upstream_closed
        self._done = False
        self.settled: Awaitable[None] | None = None

    def __aiter__(self) -> Streamed:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        held, chunk = self._held, b""
        try:
            while len(held) + len(chunk) <= self.TAIL_BYTES:
                held += chunk
                chunk = await self._rest.next_chunk()
                if not chunk:
                    return self._finish(held)
        except upstream.ChannelFailed as failure:
            channel = self._channel
            self._outcome.trace.channel_failed(
                channel.channel_id, channel.name, f"mid-answer: {failure.reason}", failure.kind
            )
            broken = UpstreamFailed("The upstream provider failed while sending the answer.")
            await self._end(broken)
            raise broken from failure
        except BaseException as failure:
            await self._end(failure)
            raise
        # Everything but the last TAIL_BYTES of held + chunk, copied once.
        cut = len(held) + len(chunk) - self.TAIL_BYTES
        if cut <= len(held):
            piece, self._held = held[:cut], held[cut:] + chunk
        else:
            piece = b"".join((held, memoryview(chunk)[: cut - len(held)]))
            self._held = chunk[cut - len(held) :]
        return piece

    def _finish(self, tail: bytes) -> bytes:
        self._close_upstream()
        tail, event = self._outcome.finish(tail, self._channel)
        self.settled = self._outcome.entry.settle(event)
        return tail

    async def aclose(self) -> None:
        """Release the hold if the answer was not passed on to its end."""
        if not self._done:
            await self._end(None)

    async def _end(self, failure: BaseException | None) -> None:
        self._close_upstream()
        await self._outcome.fail(failure)

    def _close_upstream(self) -> None:
        if self._done:
            return
        self._done = True
        self._held = b""
        self._outcome.trace.upstream_s += self._rest.waited_s
        self._rest.waited_s = 0.0
        self._rest.close()
        self._upstream_closed()
