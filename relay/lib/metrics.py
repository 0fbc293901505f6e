"""Prometheus metrics, shared by every web and worker process.

With several processes (gunicorn workers, Celery pool), each writes its
samples to files under PROMETHEUS_MULTIPROC_DIR and ``/metrics`` adds them
up; without that variable (a single process, tests) they live in memory.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "relay_requests_total", "Requests answered on /v1/embeddings.", ["status", "model"]
)
RELAY_SECONDS = Histogram(
    "relay_own_seconds",
    "Time the relay itself spent on a request (total less upstream).",
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "relay_upstream_seconds",
    "Upstream call time by channel.",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "relay_upstream_errors_total",
    "Failed upstream calls by channel and reason.",
    ["channel", "reason"],
)
LIMITER = Counter("relay_limiter_decisions_total", "Rate-limit decisions.", ["result"])
FALLBACK_LIMITER = Counter(
    "relay_fallback_limiter_total", "Requests decided by the per-process fallback limiter."
)
HOLDS = Counter(
    "relay_holds_total",
    "Balance holds by result (held, insufficient_quota, key_quota, unavailable).",
    ["result"],
)
ANSWER_BUDGET_WAITS = Counter(
    "relay_answer_budget_waits_total",
    "Requests that waited for room in their process's answer budget (overload).",
)
USAGE_QUEUED = Counter("relay_usage_events_queued_total", "Usage events handed to the workers.")
# Written by the workers (billing may not import relay, so they live there).
from billing.metrics import (  # noqa: E402, F401
    USAGE_DEAD_LETTERED,
    USAGE_LAG,
    USAGE_WRITTEN,
    UsageBacklogCollector,
)

# Read from Redis at each scrape, once for all processes (not per process).
_BACKLOG = CollectorRegistry()
_BACKLOG.register(UsageBacklogCollector())


def exposition() -> tuple[bytes, str]:
    """The metrics as Prometheus text. Blocks on Redis for the usage backlog
    (two commands): call it off the event loop."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    return body + generate_latest(_BACKLOG), CONTENT_TYPE_LATEST
