"""Cohere's Embed API v2.

``base_url`` is the API host, e.g. https://api.cohere.com; the call is
``POST {base_url}/v2/embed`` with a Bearer key.

One call carries at most 96 texts. Per text: 512 tokens for the v3 models,
about 128,000 for embed-v4.0. ``output_dimension`` only for embed-v4.0
(256, 512, 1,024 or 1,536; 1,536 by default).

Request: ``{"model": M, "texts": [...], "input_type": T, "embedding_types":
["float"], "truncate": "NONE", "output_dimension": N}``. Answer:
``{"embeddings": {"float": [[...], ...]}, "meta": {"billed_units":
{"input_tokens": N}}}``; the tokens billed are ``meta.billed_units.input_tokens``.

Choices:
- ``input_type`` is required by the v3 and later models: the ``input_type``
  option ("query" is search_query, "document" search_document, Cohere's own
  names as they are), else ``search_document`` (the common case of a batch
  being indexed).
- ``truncate`` is ``NONE``: Cohere's default (``END``) would silently cut a
  client's text; an over-long text is the client's 400 instead.
- Floats, not the ``base64`` embedding type: the v2 reference lists the type
  but does not state its byte layout, and a wrong guess would corrupt every
  vector silently; Cohere's floats are float32 values already.
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
from relay.providers.openai import bearer

TEXTS_PER_CALL = 96
INPUT_TYPES = {"query": "search_query", "document": "search_document"}
DEFAULT_INPUT_TYPE = "search_document"
OPTIONS = frozenset({"input_type"})

V3 = Capabilities(items_per_call=TEXTS_PER_CALL, tokens_per_item=512, options=OPTIONS)
MODELS = {
    "embed-v4.0": Capabilities(
        items_per_call=TEXTS_PER_CALL,
        tokens_per_item=128_000,
        dimensions=True,
        dimension_choices=frozenset({256, 512, 1024, 1536}),
        options=OPTIONS,
    ),
    "embed-english-v3.0": V3,
    "embed-multilingual-v3.0": V3,
    "embed-english-light-v3.0": V3,
    "embed-multilingual-light-v3.0": V3,
}


def input_type(options: Mapping[str, str]) -> str:
    chosen = options.get("input_type")
    return INPUT_TYPES.get(chosen, chosen) if chosen else DEFAULT_INPUT_TYPE


def float_rows(embeddings: object, count: int) -> list:
    """Cohere's ``embeddings``: by type (``{"float": [...]}``, what
    ``embedding_types`` asks for) or, in older answers, a plain list."""
    rows = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    if not isinstance(rows, list):
        raise UnreadableAnswer("no float embeddings in the answer")
    if len(rows) != count:
        raise UnreadableAnswer(f"{len(rows)} vectors for {count} inputs")
    return [vectors.from_json(row) for row in rows]


def counted(value: object) -> int | None:
    """A token count as providers write it (Cohere's are JSON doubles);
    zero or missing is None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value)


class CohereProvider:
    label = "Cohere"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model, V3)

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        payload: dict = {
            "model": shard.model,
            "texts": list(shard.items),
            "input_type": input_type(shard.options),
            "embedding_types": ["float"],
            "truncate": "NONE",
        }
        if shard.dimensions is not None:
            payload["output_dimension"] = shard.dimensions
        return UpstreamCall(
            url=f"{route.base_url}/v2/embed", headers=bearer(route), body=orjson.dumps(payload)
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        try:
            answer = orjson.loads(body)
            rows = float_rows(answer["embeddings"], len(shard.items))
            meta = answer.get("meta") or {}
            tokens = counted((meta.get("billed_units") or {}).get("input_tokens"))
            return Embedded(vectors.stack(rows), tokens)
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            AttributeError,
            vectors.NotAVector,
        ) as exc:
            raise UnreadableAnswer(f"not an embed answer ({type(exc).__name__})") from exc
