"""The one small interface every upstream provider implements.

A provider translates: one call's worth of a request (a ``Shard``) into its
HTTP call, and its success body into vectors (``Embedded``). It does no I/O;
the pipeline sends the call, applies timeouts and classifies failures the
same way for every provider. It also says what one call may carry and what
it supports (``capabilities``), so that the batch engine
(relay/pipeline/batch.py) splits a request to fit and converts what the
provider cannot do itself.

A provider whose answers are OpenAI's shape already (``passes_through``)
gets a request that fits one call exactly as the client sent it, and its
answer is passed on without decoding the vectors (relay/pipeline/embed.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from relay.contract.validation import EXTENSIONS

# Extension fields a client may send beside OpenAI's, for providers that take
# them (docs/providers.md); each channel may set a default for each.
OPTIONS = EXTENSIONS


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
    # The channel's own overrides of the provider's limits per call (None:
    # the provider's), and its defaults for the provider's options.
    items_per_call: int | None = None
    tokens_per_call: int | None = None
    tokens_per_item: int | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    # Matryoshka-trained: the relay may cut its vectors to fewer dimensions.
    truncatable: bool = False

    def __repr__(self) -> str:  # never let the credential reach a log line
        return f"ChannelRoute({self.name!r}, {self.kind}, priority={self.priority})"


@dataclass(frozen=True)
class Capabilities:
    """What one call to a provider's model may carry, and what it does itself."""

    items_per_call: int
    # Tokens as the relay counts them (cl100k_base): an estimate of the
    # provider's own count, which the relay cannot know before the call.
    tokens_per_call: int | None = None
    tokens_per_item: int | None = None
    # The provider takes an output size; ``dimension_choices`` lists the only
    # sizes it takes (empty: any size up to the model's own).
    dimensions: bool = False
    dimension_choices: frozenset[int] = frozenset()
    # It answers base64 little-endian float32 when asked.
    base64: bool = False
    # It takes OpenAI's token-id arrays as input (cl100k_base ids).
    token_ids: bool = False
    # Which of OPTIONS it takes.
    options: frozenset[str] = frozenset()

    def takes_dimensions(self, dimensions: int) -> bool:
        return self.dimensions and (
            not self.dimension_choices or dimensions in self.dimension_choices
        )

    def limited_by(self, route: ChannelRoute) -> Capabilities:
        """These capabilities with the channel's own limits where it set any."""
        return Capabilities(
            items_per_call=route.items_per_call or self.items_per_call,
            tokens_per_call=route.tokens_per_call or self.tokens_per_call,
            tokens_per_item=route.tokens_per_item or self.tokens_per_item,
            dimensions=self.dimensions,
            dimension_choices=self.dimension_choices,
            base64=self.base64,
            token_ids=self.token_ids,
            options=self.options,
        )


@dataclass(frozen=True)
class Shard:
    """What one upstream call carries: some of a request's items, in order,
    and what to ask of them."""

    model: str  # the provider's name for the model
    # Each item as text, or as token ids (only to a provider that takes them).
    items: tuple[str | tuple[int, ...], ...]
    # The items as one OpenAI ``input`` value: the client's own when the shard
    # is the whole request, so that a request passed through is sent as sent.
    input: str | list
    dimensions: int | None = None  # to ask the provider for; None: its default
    # What to ask an OpenAI-shaped provider for ("float", "base64" or None:
    # nothing, its default). Other providers answer floats or what they say.
    encoding_format: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None

    def __repr__(self) -> str:  # never let input text reach a log line
        return f"Shard({self.model!r}, {len(self.items)} items)"


@dataclass
class Embedded:
    """A call's answer: one vector per item of its shard, in the shard's order."""

    vectors: np.ndarray  # shape (items, dimensions), little-endian float32
    # The tokens the provider says it billed for the call; None when it says
    # nothing (the relay then bills its own count).
    tokens: int | None = None


class UnreadableAnswer(ValueError):
    """A success body that is not what the provider documents: the channel
    failed, not the request."""


class ChannelMisconfigured(ValueError):
    """``build`` cannot make a call from the channel's own settings (a
    malformed credential, a model the provider cannot serve): the channel
    failed, not the request. The message never contains the credential."""


@dataclass(frozen=True)
class UpstreamCall:
    url: str
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:  # headers carry the credential
        return f"UpstreamCall({self.url!r})"


class Provider(Protocol):
    # For the console's channel form.
    label: str
    # True when its success body is OpenAI's shape (to pass on unchanged).
    passes_through: bool

    def capabilities(self, model: str) -> Capabilities: ...

    def build(self, route: ChannelRoute, shard: Shard) -> UpstreamCall: ...

    # Optional: ``blames_channel(status, body) -> bool``, for a provider that
    # answers a fault of the channel's own (a bad key, say) with a status that
    # otherwise means the client's request is wrong (400, 413, 422).

    def parse(self, body: bytes, shard: Shard, headers: Mapping[str, str]) -> Embedded:
        """The vectors and billed tokens of a success body (some providers
        put the tokens in a header); raises UnreadableAnswer when the body is
        not the documented shape."""
        ...
