"""What channel health's counting costs a request: noting a channel's outcome
(``relay.pipeline.channel_health.tally().served`` / ``.failed``) in a running
event loop, flushes left out (they run about once a second, off the request).

    SECRET_KEY=x python -m bench.channel_health
"""

from __future__ import annotations

import asyncio
import os
import time

CALLS = 1_000_000


async def measure() -> tuple[float, float]:
    from relay.pipeline import channel_health

    tally = channel_health.tally()
    tally._scheduled = True  # no flush: the noting alone
    started = time.perf_counter()
    for i in range(CALLS):
        channel_health.tally().served(i % 4)
    served_ns = (time.perf_counter() - started) / CALLS * 1e9
    started = time.perf_counter()
    for i in range(CALLS):
        channel_health.tally().failed(i % 4, "failures", "503 down")
    failed_ns = (time.perf_counter() - started) / CALLS * 1e9
    return served_ns, failed_ns


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay.settings")
    import django

    django.setup()
    served_ns, failed_ns = asyncio.run(measure())
    print(f"noting a success: {served_ns:.0f} ns, a failure: {failed_ns:.0f} ns per call")


if __name__ == "__main__":
    main()
