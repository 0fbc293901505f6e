"""How many bytes of upstream answers a web process lets in at once.

When more requests are in flight than the CPU can move (a thousand clients
on two cores), answers arrive faster than the event loop passes them on and
wait inside the process: each upstream read brings up to 256 KB, and with
16-input float batches a process held ~90 MB of them in aiohttp's buffers,
its heap growing past 200 MB (docs/benchmarks.md). So a request takes its
share of RELAY_ANSWER_BUDGET_BYTES before it calls the upstream, in arrival
order, and gives it back once its answer is out of the process's hands.

The share is what the answer will occupy: the vectors' expected size (about
20 bytes a float in JSON, 5.4 in base64), at most what a streamed answer
holds at once (relay/pipeline/upstream.py), and never more than the whole budget, so
one request always gets through. Short of overload the budget does not fill:
a one-string answer is ~33 KB.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque

from django.conf import settings

from relay.contract.validation import KNOWN_MODELS, EmbeddingRequest
from relay.lib import metrics

DEFAULT_DIMENSIONS = 1536
BYTES_PER_FLOAT = {"float": 20.0, "base64": 5.4}
# The most a streamed answer holds at a time: its first part, read whole,
# plus one read of the rest (uvloop reads up to 256 KiB).
ONE_READ_BYTES = 256 * 1024
ENVELOPE_BYTES = 512

_budgets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def share(request: EmbeddingRequest) -> int:
    """The bytes the answer to ``request`` is expected to occupy here."""
    spec = KNOWN_MODELS.get(request.model)
    dimensions = request.dimensions or (spec and spec.native_dimensions) or DEFAULT_DIMENSIONS
    per_value = BYTES_PER_FLOAT["base64" if request.wants_base64 else "float"]
    expected = ENVELOPE_BYTES + int(request.input_count * dimensions * per_value)
    return min(expected, settings.RELAY_STREAM_FROM_BYTES + ONE_READ_BYTES)


class Budget:
    """A semaphore counted in bytes, first come first served: a big request
    waiting at the head is not overtaken by the small ones behind it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    async def take(self, amount: int) -> int:
        """Wait for ``amount`` bytes (at most the capacity); returns what was
        taken, for ``give``."""
        amount = min(amount, self.capacity)
        if not self._waiting and amount <= self.free:
            self.free -= amount
            return amount
        metrics.ANSWER_BUDGET_WAITS.inc()
        waiter = asyncio.get_running_loop().create_future()
        entry = (amount, waiter)
        self._waiting.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give(amount)  # granted, then cancelled before it ran
            else:
                self._waiting.remove(entry)
                self._grant()  # the head may have changed
            raise
        return amount

    def give(self, amount: int) -> None:
        self.free += amount
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            amount, waiter = self._waiting.popleft()
            self.free -= amount
            waiter.set_result(None)


def budget() -> Budget:
    """This event loop's budget (a server process runs one loop)."""
    loop = asyncio.get_running_loop()
    found = _budgets.get(loop)
    if found is None:
        found = _budgets[loop] = Budget(settings.RELAY_ANSWER_BUDGET_BYTES)
    return found
