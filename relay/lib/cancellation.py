"""Finishing what a cancelled request started, and work a request leaves
to run after its answer.

A request is cancelled when its client hangs up. A Redis step it already
sent still runs to its end there, so what the step took (an in-flight slot,
a hold) must be given back, not left to expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

_background: set[asyncio.Task] = set()


def in_background(coroutine: Coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)  # a task nobody references can be collected mid-flight
    task.add_done_callback(_background.discard)


async def finish_background() -> None:
    """Wait for this loop's background work (before the loop ends: a test,
    a one-off command)."""
    loop = asyncio.get_running_loop()
    while pending := [task for task in _background if task.get_loop() is loop]:
        await asyncio.gather(*pending, return_exceptions=True)


async def even_if_cancelled(step: Callable[[], Coroutine]) -> None:
    """Await ``step()``. Cancelled meanwhile (cancelled again, while cleaning
    up), run it once more in the background and let the cancellation go on:
    the steps given here are harmless to repeat."""
    try:
        await step()
    except asyncio.CancelledError:
        in_background(step())
        raise


async def to_completion(call: Coroutine, *, give_back: Callable[[Any], Coroutine | None]):
    """Await a Redis step to its end even if the request is cancelled
    meanwhile (client gone): what it took is then given back in the
    background, not left to expire. ``give_back`` gets the step's reply and
    returns the coroutine that gives back what it took, or None."""
    running = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:

        def give_back_if_taken(done: asyncio.Future) -> None:
            if not done.cancelled() and done.exception() is None:
                undo = give_back(done.result())
                if undo is not None:
                    in_background(undo)

        running.add_done_callback(give_back_if_taken)
        raise
