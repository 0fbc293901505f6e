"""Azure OpenAI: one deployment per model, an ``api-key`` header.

``base_url`` is the resource root, e.g. https://NAME.openai.azure.com; the
channel's model mapping names the deployment. Answers are OpenAI's shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from relay.providers.base import Capabilities, ChannelRoute, Embedded, Shard, UpstreamCall
from relay.providers.openai import CAPABILITIES, openai_payload, parse_openai_answer

# The GA data-plane version that accepts `dimensions` and `encoding_format`.
API_VERSION = "2024-10-21"


class AzureProvider:
    label = "Azure OpenAI"
    passes_through = True

    def capabilities(self, model: str) -> Capabilities:
        return CAPABILITIES

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall:
        payload = openai_payload(shard)
        del payload["model"]  # the deployment in the URL chooses the model
        return UpstreamCall(
            url=(
                f"{route.base_url}/openai/deployments/{route.upstream_model}"
                f"/embeddings?api-version={API_VERSION}"
            ),
            headers={"api-key": route.credential, "Content-Type": "application/json"},
            body=orjson.dumps(payload),
        )

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        return parse_openai_answer(body, shard)
