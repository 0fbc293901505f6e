"""The per-process fallback when Redis cannot be reached: limits fail open
to a share of each limit enforced in memory (``relay.limits.gcra.LocalLimiter``,
the script's logic in Python), so the processes together stay near the
limit. Logged at most every ``_LOG_EVERY_S`` and counted
(``fallback_activations()``, ``relay_fallback_limiter_total``).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from relay.lib import metrics
from relay.limits.gcra import LocalLimiter
from relay.limits.rules import Plan, rate_headers, refusal

log = logging.getLogger(__name__)

_LOG_EVERY_S = 30.0


def decide_locally(plan: Plan, *, model: str, tokens: int) -> dict[str, str]:
    """The headers of a request this process's share admits (its in-flight
    slots taken in ``state.limiter``); raises the 429 of a refused one."""
    # Each process enforces its share, so together they stay near the limit;
    # the headers show the share actually enforced here.
    limits = plan.limits.share(settings.RELAY_FALLBACK_PROCESSES)
    decision = state.limiter.admit(plan.keys, limits, tokens, time.monotonic_ns() // 1000)
    state.activations += 1
    metrics.FALLBACK_LIMITER.inc()
    headers = rate_headers(limits, decision)
    result = "fallback_refused" if decision.refused else "fallback_admitted"
    metrics.LIMITER.labels(result=result).inc()
    if decision.refused:
        raise refusal(decision, limits, model=model, tokens=tokens, headers=headers)
    return headers


class _Fallback:
    """Bookkeeping of the per-process fallback."""

    def __init__(self) -> None:
        self.limiter = LocalLimiter()
        self.activations = 0  # requests decided without Redis; see fallback_activations()
        self.active = False
        self._logged_at = -_LOG_EVERY_S
        self._logged_activations = 0

    def failed(self, failure: BaseException) -> None:
        self.active = True
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            # One line per interval, not one per request: an outage under load
            # would otherwise flood the log.
            log.warning(
                "Redis unreachable for rate limits (%s: %s); each process enforces 1/%d of "
                "every limit (%d requests decided so since the last report)",
                type(failure).__name__,
                failure,
                settings.RELAY_FALLBACK_PROCESSES,
                self.activations - self._logged_activations,
            )
            self._logged_at, self._logged_activations = now, self.activations

    def recovered(self) -> None:
        self.active = False
        log.warning("Redis reachable again; rate limits are shared across processes again")


state = _Fallback()


def fallback_activations() -> int:
    """Requests this process admitted or refused without Redis (for metrics)."""
    return state.activations
