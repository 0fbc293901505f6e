"""The one small interface every upstream provider implements.

A provider translates: our validated request into its HTTP call, and its
response body into OpenAI's response shape (bytes). It does no I/O; the
pipeline sends the call, applies timeouts and classifies failures the same
way for every provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relay.contract.validation import EmbeddingRequest


@dataclass(frozen=True)
class ChannelRoute:
    """A channel as a provider needs it to build a call (relay/catalog/routes.py
    reads it from the database)."""

    channel_id: int
    name: str
    kind: str
    base_url: str
    credential: str
    priority: int
    weight: int
    upstream_model: str

    def __repr__(self) -> str:  # never let the credential reach a log line
        return f"ChannelRoute({self.name!r}, {self.kind}, priority={self.priority})"


@dataclass(frozen=True)
class UpstreamCall:
    url: str
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:  # headers carry the credential
        return f"UpstreamCall({self.url!r})"


class Provider(Protocol):
    # True when ``to_openai`` returns the body unchanged: the pipeline may then
    # pass a big answer on as it arrives instead of reading it whole first.
    passes_through: bool

    def build(self, route: ChannelRoute, request: EmbeddingRequest) -> UpstreamCall: ...

    def to_openai(self, body: bytes, request: EmbeddingRequest) -> bytes:
        """The provider's success body in OpenAI's shape (often unchanged)."""
        ...


def openai_payload(model: str, request: EmbeddingRequest) -> dict:
    """The fields OpenAI-shaped APIs take, with only what the client sent."""
    payload: dict = {"model": model, "input": request.input}
    if request.encoding_format is not None:
        payload["encoding_format"] = request.encoding_format
    if request.dimensions is not None:
        payload["dimensions"] = request.dimensions
    if request.user is not None:
        payload["user"] = request.user
    return payload
