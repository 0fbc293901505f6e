"""OpenAI and every OpenAI-compatible API: SiliconFlow, DashScope's compatible
mode, Zhipu, vLLM, Hugging Face TEI, Infinity, Ollama's /v1, ...
(docs/providers.md).

``base_url`` is the API root including its version, e.g. https://api.openai.com/v1.
The answer is OpenAI's shape, so a request that fits one call is sent as the
client sent it and the answer passed on unchanged. The helpers here serve the
other OpenAI-shaped dialects too (Azure, Voyage, Jina, Mistral).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
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

# OpenAI's own limits (shared/CONTRACT.md).
CAPABILITIES = Capabilities(
    items_per_call=2048,
    tokens_per_call=300_000,
    tokens_per_item=8192,
    dimensions=True,
    base64=True,
    token_ids=True,
)


def openai_payload(shard: Shard) -> dict:
    """The fields OpenAI-shaped APIs take, with only what was asked for."""
    payload: dict = {"model": shard.model, "input": shard.input}
    if shard.encoding_format is not None:
        payload["encoding_format"] = shard.encoding_format
    if shard.dimensions is not None:
        payload["dimensions"] = shard.dimensions
    if shard.user is not None:
        payload["user"] = shard.user
    return payload


def parse_openai_answer(body: bytes, shard: Shard) -> Embedded:
    """``data[*].embedding`` (floats or base64) in ``index`` order, and the
    tokens ``usage`` reports (prompt_tokens, else total_tokens; a zero counts
    as missing)."""
    try:
        answer, rows = _read_answer(body)
    except (orjson.JSONDecodeError, KeyError, TypeError, vectors.NotAVector) as exc:
        raise UnreadableAnswer(f"not an embeddings answer ({type(exc).__name__})") from exc
    if len(rows) != len(shard.items):
        raise UnreadableAnswer(f"{len(rows)} vectors for {len(shard.items)} inputs")
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    tokens = next(
        (
            count
            for count in (usage.get("prompt_tokens"), usage.get("total_tokens"))
            if isinstance(count, int) and not isinstance(count, bool) and count > 0
        ),
        None,
    )
    return Embedded(rows, tokens)


def _read_answer(body: bytes) -> tuple[dict, np.ndarray]:
    """The answer and its rows in ``index`` order: base64 vectors skimmed
    where the body is laid out as OpenAI's (the batch engine asks for
    them), anything else parsed whole."""
    skimmed = vectors.skim_base64_answer(body)
    if skimmed is None:
        answer = orjson.loads(body)
        skimmed = answer, vectors.from_json_rows([item["embedding"] for item in answer["data"]])
    answer, rows = skimmed
    data = answer["data"]
    order = sorted(range(len(data)), key=lambda position: data[position]["index"])
    return answer, rows if order == list(range(len(data))) else rows[order]


def bearer(route: ChannelRoute) -> dict[str, str]:
    return {"Authorization": f"Bearer {route.credential}", "Content-Type": "application/json"}


class OpenAIProvider:
    label = "OpenAI-compatible"
    passes_through = True

    def capabilities(self, model: str) -> Capabilities:
        return CAPABILITIES

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        return UpstreamCall(
            url=f"{route.base_url}/embeddings",
            headers=bearer(route),
            body=orjson.dumps(openai_payload(shard)),
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        return parse_openai_answer(body, shard)
