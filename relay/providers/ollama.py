"""Ollama's native embeddings API.

``base_url`` is the server root, e.g. http://127.0.0.1:11434; the call is
``POST {base_url}/api/embed``. Ollama has no authentication: a Bearer header
is sent only when the channel has a credential (for a proxy in front of it).

Request: ``{"model", "input": [...], "truncate": false, "dimensions": N}``.
Answer: ``{"embeddings": [[...], ...], "prompt_eval_count": N}``; the tokens
are ``prompt_eval_count`` (the model's own tokenizer).

Choices:
- 32 texts a call. Ollama documents no cap; it runs one call's texts on one
  loaded model, so a large batch keeps one connection busy for as long as the
  whole batch takes and risks the relay's read timeout, while several calls
  of 32 spread over the channel's parallel slots (``OLLAMA_NUM_PARALLEL``)
  and over other channels. A channel may set its own figure.
- ``truncate`` false: Ollama's default cuts a text to the model's context in
  silence; an over-long text is the client's error instead. The context is
  the model's and unknown here, so no limit per text is declared.
- No output size declared: Ollama's ``dimensions`` cuts any model's vectors,
  Matryoshka-trained or not. The relay cuts them itself (the same cut and
  renormalisation) only for models the operator marked Matryoshka-trained.
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

CAPABILITIES = Capabilities(items_per_call=32)


def counted(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


class OllamaProvider:
    label = "Ollama"
    passes_through = False

    def capabilities(self, model: str) -> Capabilities:
        return CAPABILITIES

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        payload: dict = {"model": shard.model, "input": list(shard.items), "truncate": False}
        if shard.dimensions is not None:
            payload["dimensions"] = shard.dimensions
        headers = {"Content-Type": "application/json"}
        if route.credential:
            headers["Authorization"] = f"Bearer {route.credential}"
        return UpstreamCall(
            url=f"{route.base_url}/api/embed", headers=headers, body=orjson.dumps(payload)
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        try:
            answer = orjson.loads(body)
            rows = [vectors.from_json(row) for row in answer["embeddings"]]
            if len(rows) != len(shard.items):
                raise UnreadableAnswer(f"{len(rows)} vectors for {len(shard.items)} inputs")
            return Embedded(vectors.stack(rows), counted(answer.get("prompt_eval_count")))
        except (
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            AttributeError,
            vectors.NotAVector,
        ) as exc:
            raise UnreadableAnswer(f"not an /api/embed answer ({type(exc).__name__})") from exc
