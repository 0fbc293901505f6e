"""Mistral AI's embeddings.

``base_url`` is the API root including its version, e.g. https://api.mistral.ai/v1;
the call is ``POST {base_url}/embeddings`` with a Bearer key.

Limits: 8,192 tokens per text; 16,384 tokens in one call (Mistral's answer
past it: "Too many tokens overall, split into more batches."), which the
relay plans as three quarters of that in cl100k_base tokens, Mistral's
tokenizer counting differently; a cap on the texts of one call that Mistral
does not document ("Too many inputs in request"): 128 here, the cap most
integrations use (256 has been reported to pass).

Request: OpenAI's body (``model``, ``input``, ``encoding_format``) with
``output_dimension`` instead of ``dimensions``, and only for the models that
take it (codestral-embed, up to 3,072; mistral-embed answers 1,024 always).
Answer: OpenAI's shape (floats or base64 little-endian float32) with
``usage.prompt_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from relay.providers.base import Capabilities, ChannelRoute, Embedded, Shard, UpstreamCall
from relay.providers.openai import bearer, parse_openai_answer

TEXTS_PER_CALL = 128
TOKENS_PER_CALL = 16_384 * 3 // 4

FIXED = Capabilities(
    items_per_call=TEXTS_PER_CALL,
    tokens_per_call=TOKENS_PER_CALL,
    tokens_per_item=8192,
    base64=True,
)
FLEXIBLE = Capabilities(
    items_per_call=TEXTS_PER_CALL,
    tokens_per_call=TOKENS_PER_CALL,
    tokens_per_item=8192,
    base64=True,
    dimensions=True,
)
MODELS = {"codestral-embed": FLEXIBLE, "codestral-embed-2505": FLEXIBLE}


class MistralProvider:
    label = "Mistral AI"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model, FIXED)

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        payload: dict = {"model": shard.model, "input": list(shard.items)}
        if shard.dimensions is not None:
            payload["output_dimension"] = shard.dimensions
        if shard.encoding_format is not None:
            payload["encoding_format"] = shard.encoding_format
        return UpstreamCall(
            url=f"{route.base_url}/embeddings", headers=bearer(route), body=orjson.dumps(payload)
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        return parse_openai_answer(body, shard)
