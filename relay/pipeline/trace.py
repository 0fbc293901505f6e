"""What one /v1/embeddings request did: filled in along the pipeline, then
written as one JSON log line and counted in the metrics when it ends.

Only names, ids and numbers go in: never a secret, a credential or input text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from relay.lib import metrics

log = logging.getLogger("relay.requests")
log_channels = logging.getLogger(__name__)


@dataclass
class Trace:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    tenant_id: int | None = None
    key_prefix: str = ""
    model: str = ""
    channel: str = ""
    attempts: int = 0
    failed_channel_ids: list[int] = field(default_factory=list)
    tokens: int = 0
    upstream_s: float = 0.0

    def channel_failed(self, channel_id: int, channel_name: str, reason: str, kind: str) -> None:
        """Note a channel that failed this request: logged, counted, and kept
        for the channels' error rates (the usage event lists it)."""
        log_channels.warning("channel %s failed: %s", channel_name, reason)
        metrics.UPSTREAM_ERRORS.labels(channel=channel_name, reason=kind).inc()
        self.failed_channel_ids.append(channel_id)

    def finish(self, status: int, error_code: str | None = None) -> None:
        total_s = time.perf_counter() - self.started
        own_s = max(total_s - self.upstream_s, 0.0)
        metrics.REQUESTS.labels(status=str(status), model=self.model or "-").inc()
        metrics.RELAY_SECONDS.observe(own_s)
        log.info(
            "request",
            extra={
                "request_id": self.request_id,
                "tenant_id": self.tenant_id,
                "key_prefix": self.key_prefix,
                "model": self.model,
                "channel": self.channel,
                "attempts": self.attempts,
                "tokens": self.tokens,
                "status": status,
                "error_code": error_code,
                "total_ms": round(total_s * 1000, 2),
                "upstream_ms": round(self.upstream_s * 1000, 2),
                "relay_ms": round(own_s * 1000, 2),
            },
        )
