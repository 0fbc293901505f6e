"""Google's Gemini API: ``models.batchEmbedContents``.

``base_url`` is the API host, e.g. https://generativelanguage.googleapis.com;
the call is ``POST {base_url}/v1beta/models/{model}:batchEmbedContents``. The
API key travels in the ``x-goog-api-key`` header, never in the URL, so that it
never reaches an access log.

One call carries at most 100 requests (one per text); each text at most the
model's input limit (2,048 tokens for gemini-embedding-001, which the API
would otherwise cut silently). ``outputDimensionality`` where the model takes
it (gemini-embedding-001: any size up to 3,072, Matryoshka-trained).

Request: ``{"requests": [{"model": "models/M", "content": {"parts": [{"text":
T}]}, "taskType": K, "outputDimensionality": N}, ...]}``. Answer:
``{"embeddings": [{"values": [...]}, ...]}`` in request order, with no token
count (the relay bills its own). ``taskType`` comes from the ``task`` option,
else ``input_type``: "query" is RETRIEVAL_QUERY, "document" is
RETRIEVAL_DOCUMENT, and Gemini's own names are taken as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from relay.contract import vectors
from relay.providers.base import (
    Capabilities,
    ChannelRoute,
    Embedded,
    Shard,
    UnreadableAnswer,
    UpstreamCall,
)

REQUESTS_PER_CALL = 100
TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}
OPTIONS = frozenset({"task", "input_type"})

MODELS = {
    "gemini-embedding-001": Capabilities(
        items_per_call=REQUESTS_PER_CALL, tokens_per_item=2048, dimensions=True, options=OPTIONS
    ),
    "text-embedding-004": Capabilities(
        items_per_call=REQUESTS_PER_CALL, tokens_per_item=2048, dimensions=True, options=OPTIONS
    ),
    "embedding-001": Capabilities(
        items_per_call=REQUESTS_PER_CALL, tokens_per_item=2048, options=OPTIONS
    ),
}
# A model not listed: the batch cap and the smallest input limit, and no
# output size (the relay cuts the vectors itself where the operator allows).
OTHER = Capabilities(items_per_call=REQUESTS_PER_CALL, tokens_per_item=2048, options=OPTIONS)


def model_name(model: str) -> str:
    return model.removeprefix("models/")


def task_type(options: Mapping[str, str]) -> str | None:
    chosen = options.get("task") or options.get("input_type")
    return TASK_TYPES.get(chosen, chosen) if chosen else None


class GeminiProvider:
    label = "Google Gemini"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model_name(model), OTHER)

    def blames_channel(self, status: int, body: bytes) -> bool:
        """Gemini answers a bad API key with 400 INVALID_ARGUMENT: the
        channel's fault (its ErrorInfo reason says API_KEY_INVALID), not the
        client's, so another channel is tried."""
        try:
            details = orjson.loads(body)["error"].get("details") or []
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return False
        return any(
            isinstance(detail, dict) and detail.get("reason") == "API_KEY_INVALID"
            for detail in details
        )

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        name = model_name(shard.model)
        extra: dict = {}
        if kind := task_type(shard.options):
            extra["taskType"] = kind
        if shard.dimensions is not None:
            extra["outputDimensionality"] = shard.dimensions
        requests = [
            {"model": f"models/{name}", "content": {"parts": [{"text": text}]}, **extra}
            for text in shard.items
        ]
        return UpstreamCall(
            url=f"{route.base_url}/v1beta/models/{name}:batchEmbedContents",
            headers={"x-goog-api-key": route.credential, "Content-Type": "application/json"},
            body=orjson.dumps({"requests": requests}),
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        try:
            rows = [vectors.from_json(item["values"]) for item in orjson.loads(body)["embeddings"]]
            if len(rows) != len(shard.items):
                raise UnreadableAnswer(f"{len(rows)} vectors for {len(shard.items)} inputs")
            return Embedded(vectors.stack(rows), None)
        except (orjson.JSONDecodeError, KeyError, TypeError, vectors.NotAVector) as exc:
            kind = type(exc).__name__
            raise UnreadableAnswer(f"not a batchEmbedContents answer ({kind})") from exc
