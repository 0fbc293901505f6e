"""Jina AI's Embeddings API.

``base_url`` is the API root including its version, e.g. https://api.jina.ai/v1;
the call is ``POST {base_url}/embeddings`` with a Bearer key.

One call carries at most 2,048 texts; per text 8,192 tokens (32,768 for
jina-embeddings-v4). ``dimensions`` for the Matryoshka-trained models
(jina-embeddings-v3 up to 1,024, v4 up to 2,048, jina-clip-v2 up to 1,024);
``task`` for v3, v4 and clip-v2.

Request: ``{"model", "input": [...], "task", "dimensions", "embedding_type":
"float" | "base64", "normalized": true, "truncate": false}``. Answer:
OpenAI's shape (``data[*].embedding``, floats or base64 little-endian float32)
with ``usage.total_tokens``.

Choices:
- ``task`` from the ``task`` option, else ``input_type``: "query" is
  retrieval.query, "document" retrieval.passage; Jina's own names
  (text-matching, classification, separation, code.query, ...) as they are.
- base64 is asked for with the field Jina documents, ``embedding_type``, not
  OpenAI's ``encoding_format``; the answer is read as floats or base64
  whichever comes back.
- ``normalized`` true, so that vectors are unit length as OpenAI's are (Jina's
  default leaves them unnormalised); ``truncate`` false (Jina's default too,
  sent so it stays so): an over-long text is the client's 400, never cut.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from relay.providers.base import Capabilities, ChannelRoute, Embedded, Shard, UpstreamCall
from relay.providers.openai import bearer, parse_openai_answer

TEXTS_PER_CALL = 2048
TASKS = {"query": "retrieval.query", "document": "retrieval.passage"}
OPTIONS = frozenset({"task", "input_type"})


def _model(tokens_per_item: int, *, tasks: bool) -> Capabilities:
    return Capabilities(
        items_per_call=TEXTS_PER_CALL,
        tokens_per_item=tokens_per_item,
        dimensions=tasks,  # the models with task adapters are the Matryoshka ones
        base64=True,
        options=OPTIONS if tasks else frozenset(),
    )


MODELS = {
    "jina-embeddings-v4": _model(32_768, tasks=True),
    "jina-embeddings-v3": _model(8192, tasks=True),
    "jina-clip-v2": _model(8192, tasks=True),
}
OTHER = _model(8192, tasks=False)  # the v2 family and anything not listed


def task(options: Mapping[str, str]) -> str | None:
    chosen = options.get("task") or options.get("input_type")
    return TASKS.get(chosen, chosen) if chosen else None


class JinaProvider:
    label = "Jina AI"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model, OTHER)

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        payload: dict = {"model": shard.model, "input": list(shard.items)}
        if self.capabilities(shard.model).options and (kind := task(shard.options)):
            payload["task"] = kind
        if shard.dimensions is not None:
            payload["dimensions"] = shard.dimensions
        payload["embedding_type"] = "base64" if shard.encoding_format == "base64" else "float"
        payload["normalized"] = True
        payload["truncate"] = False
        return UpstreamCall(
            url=f"{route.base_url}/embeddings", headers=bearer(route), body=orjson.dumps(payload)
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        return parse_openai_answer(body, shard)
