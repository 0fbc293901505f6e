"""The workers' metrics (exposed with the relay's at /metrics), and the
usage stream's backlog, read from Redis when /metrics is scraped."""

from __future__ import annotations

import logging

import redis
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from billing import backlog, dead_letters, streams

log = logging.getLogger(__name__)

USAGE_WRITTEN = Counter("relay_usage_records_written_total", "Usage records written by workers.")
USAGE_DEAD_LETTERED = Counter(
    "relay_usage_events_dead_lettered_total",
    "Usage events PostgreSQL refused on their own, moved to the dead-letter stream.",
)
USAGE_LAG = Histogram(
    "relay_usage_event_lag_seconds",
    "At each drain round's commit: from the end of its oldest request to the commit.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)


class UsageBacklogCollector:
    """The age of the oldest unwritten usage event and the number of dead
    letters, read from Redis at scrape time rather than set by a worker: a
    worker that is dead or stuck cannot report its own backlog."""

    def collect(self):
        try:
            conn = streams.client()
            oldest_s = backlog.oldest_pending_age_s(conn)
            dead = dead_letters.count(conn)
        except redis.RedisError as exc:
            # No sample rather than a wrong one; /metrics itself still answers.
            log.warning("usage backlog not measured: %s", exc)
            return
        yield GaugeMetricFamily(
            "relay_usage_oldest_pending_seconds",
            "Age of the oldest usage event not yet written to PostgreSQL (0: none waiting).",
            value=oldest_s,
        )
        yield GaugeMetricFamily(
            "relay_usage_dead_letters",
            "Usage events in the dead-letter stream, waiting for an operator.",
            value=dead,
        )
