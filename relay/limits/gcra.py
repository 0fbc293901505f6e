"""The arithmetic of the rate limits, in plain Python with the clock passed in.

Rates are GCRA in its leaky-bucket form (relay/limits/lua.py explains the
scaling that keeps it in exact integers). The Redis script is the real
limiter; ``LocalLimiter`` is the same logic in process memory, used while
Redis is down and as the reference the tests check against a controlled clock.
"""

from __future__ import annotations

from typing import NamedTuple

PERIOD_US = 60_000_000  # both rates are per minute


class Limits(NamedTuple):
    """Effective limits of one request; None means unlimited. The order is the
    script's: a refusal names its limit by 1-based position."""

    key_rpm: int | None
    key_tpm: int | None
    tenant_rpm: int | None
    tenant_tpm: int | None
    key_concurrency: int | None
    tenant_concurrency: int | None

    def share(self, processes: int) -> Limits:
        """Each process's part when processes enforce the limits separately;
        never rounded down to 0, which would refuse everything."""
        return Limits(*(v if v is None or v == 0 else max(1, v // processes) for v in self))


class Decision(NamedTuple):
    """The script's answer, field for field."""

    refused: int  # 0: admitted; else the position in Limits of the limit reported
    used: int  # of the refusing limit: units used in the window, or requests in flight
    retry_us: int  # when it can pass; -1: never (the request alone is over the limit)
    rpm_remaining: int
    rpm_reset_us: int
    tpm_remaining: int
    tpm_reset_us: int


def drained(level: int, ts_us: int, now_us: int, limit: int) -> int:
    """A bucket's level (units x PERIOD_US) after draining ``limit`` per µs since ts_us."""
    return max(0, level - max(0, now_us - ts_us) * limit)


def wait_us(level: int, cost: int, limit: int) -> int:
    """0 if ``cost`` fits now, -1 if it never can, else µs until it does."""
    over = level + (cost - limit) * PERIOD_US
    if over <= 0:
        return 0
    if cost > limit:
        return -1
    return -(-over // limit)


def remaining_and_reset(level: int, limit: int) -> tuple[int, int]:
    """Units still available now, and µs until the bucket is empty again."""
    if limit <= 0:
        return 0, 0
    return max(0, (limit * PERIOD_US - level) // PERIOD_US), -(-level // limit)


def format_duration(us: int) -> str:
    """As OpenAI writes x-ratelimit-reset-* (Go's duration format): ``20ms``,
    ``1s``, ``8.64s``, ``1m30s``, ``6m0s``. Rounded up to the millisecond, so
    a client that waits that long is let in."""
    ms = -(-us // 1000)
    if ms < 1000:
        return f"{ms}ms" if ms > 0 else "0s"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    text = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


class LocalLimiter:
    """The admission script's logic in process memory, on the caller's clock:
    the fallback while Redis is down, and the reference its tests use.
    ``keys`` are the script's four KEYS."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._buckets: dict[tuple[str, int], tuple[int, int]] = {}  # -> (level, ts_us)
        self._in_flight: dict[str, int] = {}

    def admit(self, keys: tuple[str, ...], limits: Limits, tokens: int, now_us: int) -> Decision:
        costs = (1, tokens, 1, tokens)
        names = [(keys[i // 2], i % 2) for i in range(4)]
        levels = [0, 0, 0, 0]
        refused = used = retry = 0
        for i in range(4):
            limit = limits[i]
            if limit is None:
                continue
            state = self._buckets.get(names[i])
            if state is not None:
                levels[i] = drained(state[0], state[1], now_us, limit)
            wait = wait_us(levels[i], costs[i], limit)
            if wait and (refused == 0 or (retry >= 0 and (wait < 0 or wait > retry))):
                refused, used, retry = i + 1, -(-levels[i] // PERIOD_US), wait
        if refused == 0:
            for s in (0, 1):
                limit = limits[4 + s]
                count = self._in_flight.get(keys[2 + s], 0)
                if limit is not None and count >= limit:
                    refused, used = 5 + s, count
                    break
        taken = 0 if refused else 1
        rpm = remaining_and_reset(levels[0] + taken * PERIOD_US, limits[0] or 0)
        tpm = remaining_and_reset(levels[1] + taken * tokens * PERIOD_US, limits[1] or 0)
        if not refused:
            if len(self._buckets) >= self.max_entries:
                self._buckets.clear()  # crude but bounded; only ever used in an outage
            for i in range(4):
                if limits[i] is not None:
                    self._buckets[names[i]] = (levels[i] + costs[i] * PERIOD_US, now_us)
            for s in (0, 1):
                if limits[4 + s] is not None:
                    self._in_flight[keys[2 + s]] = self._in_flight.get(keys[2 + s], 0) + 1
        return Decision(refused, used, retry, *rpm, *tpm)

    def release(self, slot_keys: tuple[str, ...]) -> None:
        for name in slot_keys:
            count = self._in_flight.get(name, 0) - 1
            if count > 0:
                self._in_flight[name] = count
            else:
                self._in_flight.pop(name, None)
