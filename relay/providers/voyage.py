"""Voyage AI (also served as MongoDB's Embedding API).

``base_url`` is the API root including its version, e.g.
https://api.voyageai.com/v1; the call is ``POST {base_url}/embeddings`` with
a Bearer key.

One call carries at most 1,000 texts and at most a per-model number of
tokens in all: 1M for voyage-4-lite and voyage-3.5-lite; 320K for voyage-4,
voyage-3.5 and voyage-2; 120K for voyage-4-large, voyage-3-large,
voyage-code-3, voyage-finance-2 and voyage-law-2. Those are Voyage's tokens
and the relay counts cl100k_base, so the relay plans with three quarters of
each ceiling. Per text: 32,000 tokens (16,000 for voyage-law-2 and
voyage-code-2, 4,000 for voyage-2). ``output_dimension`` only for the models
that document it (256, 512, 1,024 or 2,048).

Request: OpenAI's fields renamed: ``{"model", "input", "input_type",
"output_dimension", "output_dtype": "float", "encoding_format", "truncation":
false}``. Answer: OpenAI's shape (``data[*].embedding``, floats or base64
little-endian float32) with ``usage.total_tokens`` only.

Choices: ``input_type`` from the option ("query", "document"; omitted, i.e.
null, when not given); ``truncation`` false, because Voyage's default would
silently cut a client's text (an over-long text is the client's 400).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from relay.providers.base import Capabilities, ChannelRoute, Embedded, Shard, UpstreamCall
from relay.providers.openai import bearer, parse_openai_answer

TEXTS_PER_CALL = 1000
OPTIONS = frozenset({"input_type"})
FLEXIBLE = frozenset({256, 512, 1024, 2048})


def _model(tokens_per_call: int, tokens_per_item: int, sizes: frozenset[int]) -> Capabilities:
    return Capabilities(
        items_per_call=TEXTS_PER_CALL,
        # Headroom for the difference between Voyage's tokenizer and ours.
        tokens_per_call=tokens_per_call * 3 // 4,
        tokens_per_item=tokens_per_item,
        dimensions=bool(sizes),
        dimension_choices=sizes,
        base64=True,
        options=OPTIONS,
    )


MODELS = {
    "voyage-4-lite": _model(1_000_000, 32_000, FLEXIBLE),
    "voyage-3.5-lite": _model(1_000_000, 32_000, FLEXIBLE),
    "voyage-4": _model(320_000, 32_000, FLEXIBLE),
    "voyage-3.5": _model(320_000, 32_000, FLEXIBLE),
    "voyage-2": _model(320_000, 4_000, frozenset()),
    "voyage-4-large": _model(120_000, 32_000, FLEXIBLE),
    "voyage-3-large": _model(120_000, 32_000, FLEXIBLE),
    "voyage-code-3": _model(120_000, 32_000, FLEXIBLE),
    "voyage-finance-2": _model(120_000, 32_000, frozenset()),
    "voyage-law-2": _model(120_000, 16_000, frozenset()),
    "voyage-code-2": _model(120_000, 16_000, frozenset()),
}
# A model not listed: the smallest documented ceilings, no output size.
OTHER = _model(120_000, 4_000, frozenset())


class VoyageProvider:
    label = "Voyage AI"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model, OTHER)

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        payload: dict = {"model": shard.model, "input": list(shard.items), "truncation": False}
        if kind := shard.options.get("input_type"):
            payload["input_type"] = kind
        if shard.dimensions is not None:
            payload["output_dimension"] = shard.dimensions
        payload["output_dtype"] = "float"
        if shard.encoding_format == "base64":
            payload["encoding_format"] = "base64"
        return UpstreamCall(
            url=f"{route.base_url}/embeddings", headers=bearer(route), body=orjson.dumps(payload)
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        return parse_openai_answer(body, shard)
