"""Azure OpenAI: one deployment per model, an ``api-key`` header.

``base_url`` is the resource root, e.g. https://NAME.openai.azure.com; the
channel's model mapping names the deployment.
"""

from __future__ import annotations

import orjson

from relay.providers.base import UpstreamCall, openai_payload

# The GA data-plane version that accepts `dimensions` and `encoding_format`.
API_VERSION = "2024-10-21"


class AzureProvider:
    # Its answers are OpenAI's shape already (to_openai changes nothing), so
    # big ones can be passed on as they arrive.
    passes_through = True

    def build(self, route, request) -> UpstreamCall:
        payload = openai_payload(route.upstream_model, request)
        del payload["model"]  # the deployment in the URL chooses the model
        return UpstreamCall(
            url=(
                f"{route.base_url}/openai/deployments/{route.upstream_model}"
                f"/embeddings?api-version={API_VERSION}"
            ),
            headers={"api-key": route.credential, "Content-Type": "application/json"},
            body=orjson.dumps(payload),
        )

    def to_openai(self, body: bytes, request) -> bytes:
        return body
