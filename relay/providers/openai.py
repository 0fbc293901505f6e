"""OpenAI and every OpenAI-compatible API (vLLM, Ollama's /v1, SiliconFlow, ...).

``base_url`` is the API root including its version, e.g. https://api.openai.com/v1.
"""

from __future__ import annotations

import orjson

from relay.providers.base import UpstreamCall, openai_payload


class OpenAIProvider:
    # Its answers are OpenAI's shape already (to_openai changes nothing), so
    # big ones can be passed on as they arrive.
    passes_through = True

    def build(self, route, request) -> UpstreamCall:
        return UpstreamCall(
            url=f"{route.base_url}/embeddings",
            headers={
                "Authorization": f"Bearer {route.credential}",
                "Content-Type": "application/json",
            },
            body=orjson.dumps(openai_payload(route.upstream_model, request)),
        )

    def to_openai(self, body: bytes, request) -> bytes:
        return body
