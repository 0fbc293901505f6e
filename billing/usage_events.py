"""The usage event: what a web process hands to the workers for each request.

Events travel through a Redis stream (``settings.USAGE_STREAM``). Appending to
a stream is one cheap command on the request path, where publishing a Celery
task costs ~750 µs; Celery workers then read the stream in batches through a
consumer group, so an event a dead worker had claimed is handed to another,
and only acknowledged once its record is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from billing.pricing import cost_nanos

FIELD = "e"
# The nanos the live balance was charged for the request (set by the settle
# script, which alone knows it).
FIELD_CHARGE = "c"
CONSUMER_GROUP = "usage-writers"


@dataclass(frozen=True)
class UsageEvent:
    request_id: str
    tenant_id: int
    api_key_id: int
    group_id: int
    channel_id: int | None
    model: str
    served_model: str
    input_count: int
    counted_tokens: int
    tokens: int
    token_source: str
    price_per_mtok_nanos: int
    latency_ms: int
    status: str
    end_user: str
    created_ms: int
    # Channels tried before the one that served (or all, when none did).
    failed_channel_ids: list[int] = field(default_factory=list)
    # Items answered from the embedding cache, their tokens and their price.
    cached_items: int = 0
    cached_tokens: int = 0
    cached_price_per_mtok_nanos: int = 0

    @property
    def cost_nanos(self) -> int:
        return cost_nanos(
            self.tokens,
            self.price_per_mtok_nanos,
            cached_tokens=self.cached_tokens,
            cached_price_per_mtok_nanos=self.cached_price_per_mtok_nanos,
        )

    def encode(self) -> bytes:
        # orjson serialises dataclasses natively (dataclasses.asdict deep-copies).
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes) -> UsageEvent:
        return cls(**orjson.loads(raw))
