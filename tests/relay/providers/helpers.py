"""Shared by the provider tests: a channel, a shard, the fake's base URL for
a dialect, sending a built call, and the fake's vector of a text."""

from __future__ import annotations

import httpx
import numpy as np

from relay.devtools.fake_upstream import vector
from relay.providers.base import ChannelRoute, Shard, UpstreamCall

# The fake's base URL path for each dialect (relay/devtools/fake_upstream/__init__.py).
PATHS = {
    "gemini": "gemini",
    "cohere": "cohere",
    "voyage": "voyage/v1",
    "jina": "jina/v1",
    "mistral": "mistral/v1",
    "ollama": "ollama",
    "bedrock": "bedrock",
}


def dialect_url(fake, kind: str, options: str = "") -> str:
    return f"{fake.url}/x/{options}/{PATHS[kind]}" if options else f"{fake.url}/{PATHS[kind]}"


def route(kind: str, base_url: str, credential: str = "sk-test", model: str = "m") -> ChannelRoute:
    return ChannelRoute(
        channel_id=1,
        name="c",
        kind=kind,
        base_url=base_url,
        credential=credential,
        priority=0,
        weight=1,
        upstream_model=model,
    )


def shard(model: str, texts: list[str], **fields) -> Shard:
    return Shard(model=model, items=tuple(texts), input=list(texts), **fields)


def send(call: UpstreamCall) -> httpx.Response:
    return httpx.post(call.url, content=call.body, headers=call.headers, timeout=30)


def expected(text: str, dimensions: int) -> np.ndarray:
    return np.asarray(vector(text, dimensions), dtype="<f4")


def assert_vectors(vectors: np.ndarray, texts: list[str], dimensions: int) -> None:
    """Row i is exactly the fake's vector of text i, as little-endian float32."""
    assert vectors.dtype == np.dtype("<f4")
    assert vectors.shape == (len(texts), dimensions)
    for row, text in zip(vectors, texts, strict=True):
        assert np.array_equal(row, expected(text, dimensions)), text
