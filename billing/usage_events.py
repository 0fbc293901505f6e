"""The usage event: what a web process hands to the workers for each request.

Events travel through a Redis stream (``settings.USAGE_STREAM``). Appending to
a stream is one cheap command on the request path, where publishing a Celery
task costs ~750 µs; Celery workers then read the stream in batches through a
consumer group, so an event a dead worker had claimed is handed to another,
and only acknowledged once its record is committed.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, field, fields

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
        """The event ``raw`` encodes; ValueError, saying why, if it does not
        encode one (not JSON, a field missing or unknown, a value of the
        wrong type), so a drain can set the entry aside rather than stall."""
        try:
            values = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"not a JSON object but {type(values).__name__}")
        missing = _REQUIRED - values.keys()
        unknown = values.keys() - _TYPES.keys()
        if missing:
            raise ValueError(f"fields missing: {', '.join(sorted(missing))}")
        if unknown:
            raise ValueError(f"fields unknown: {', '.join(sorted(unknown))}")
        for name, value in values.items():
            # type(), not isinstance: JSON's true is a bool, no count or id.
            if type(value) not in _TYPES[name]:
                raise ValueError(f"{name} is {type(value).__name__}: {str(value)[:40]!r}")
        if any(type(item) is not int for item in values.get("failed_channel_ids", ())):
            raise ValueError("failed_channel_ids holds a value that is no channel id")
        # Every field checked above, so the instance is filled directly: a
        # frozen dataclass's __init__ sets each of its 20 fields through
        # object.__setattr__, a fifth of the drain's decoding time.
        event = object.__new__(cls)
        event.__dict__.update(_defaults(), **values)
        return event


def _accepted(hint: object) -> tuple[type, ...]:
    """The types a field's value may have once parsed from JSON."""
    if typing.get_origin(hint) is list:
        return (list,)
    return typing.get_args(hint) or (typing.cast(type, hint),)  # int | None: (int, NoneType)


_TYPES = {name: _accepted(hint) for name, hint in typing.get_type_hints(UsageEvent).items()}
_REQUIRED = {f.name for f in fields(UsageEvent) if f.default is f.default_factory}
_DEFAULTS = {f.name: f.default for f in fields(UsageEvent) if f.default is not MISSING}


def _defaults() -> dict[str, object]:
    """The optional fields' defaults, a fresh list for each event."""
    return {**_DEFAULTS, "failed_channel_ids": []}
