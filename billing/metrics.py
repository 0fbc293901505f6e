"""The workers' metrics (exposed with the relay's at /metrics)."""

from prometheus_client import Counter, Histogram

USAGE_WRITTEN = Counter("relay_usage_records_written_total", "Usage records written by workers.")
USAGE_LAG = Histogram(
    "relay_usage_event_lag_seconds",
    "From a request's end to its usage record's commit.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
