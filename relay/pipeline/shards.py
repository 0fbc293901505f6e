"""Fitting a request to one channel: which items go in which call, and what
to ask of the provider (relay/pipeline/batch.py sends them).

Items keep their order inside a shard and shards follow each other, so the
answers fall back into place by position. A channel is unfit for a request
it cannot serve at all: an item longer than the provider takes in one call,
or `dimensions` the provider cannot give and the model may not be cut to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from relay.contract import tokens
from relay.contract.validation import EmbeddingRequest
from relay.pipeline import routing
from relay.providers import PROVIDERS
from relay.providers.base import Capabilities, ChannelRoute, Shard


class Unfit(Exception):
    """This channel cannot serve the request; ``param`` and ``limit`` say why."""

    def __init__(self, reason: str, *, param: str, limit: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.param, self.limit = reason, param, limit


@dataclass(frozen=True)
class Fit:
    """How a channel serves a request's items."""

    channel: ChannelRoute
    capabilities: Capabilities
    dimensions: int | None  # to ask the provider for
    truncate_to: int | None  # to cut the provider's vectors to, then renormalise
    decode_tokens: bool  # token arrays go as text: the provider takes no ids

    @property
    def passes_through(self) -> bool:
        return PROVIDERS[self.channel.kind].passes_through


def fit(channel: ChannelRoute, request: EmbeddingRequest) -> Fit:
    """How ``channel`` serves ``request``; raises Unfit when it cannot."""
    capabilities = PROVIDERS[channel.kind].capabilities(channel.upstream_model).limited_by(channel)
    longest = capabilities.tokens_per_item
    if longest is not None:
        for index, count in enumerate(request.token_counts):
            if count > longest:
                raise Unfit(
                    f"maximum input length is {longest} tokens",
                    param="input" if len(request.token_counts) == 1 else f"input[{index}]",
                    limit=longest,
                )
    dimensions = truncate_to = None
    if request.dimensions is not None:
        if capabilities.takes_dimensions(request.dimensions):
            dimensions = request.dimensions
        elif channel.truncatable:
            truncate_to = request.dimensions
        else:
            raise Unfit("the model does not support specifying dimensions", param="dimensions")
    decode = not capabilities.token_ids and any(not isinstance(i, str) for i in request.items)
    return Fit(channel, capabilities, dimensions, truncate_to, decode)


def next_fit(
    channels: Sequence[ChannelRoute], request: EmbeddingRequest, tried: set[int]
) -> tuple[Fit | None, Unfit | None]:
    """The next channel to try that can serve the request, as routing
    chooses (relay/pipeline/routing.py); channels that cannot are passed
    over, not tried (the first reason is returned, for the client's 400 when
    none can). ``tried`` is left as it was."""
    passed_over = set(tried)
    reason = None
    while (channel := routing.next_channel(channels, passed_over)) is not None:
        try:
            return fit(channel, request), reason
        except Unfit as unfit:
            reason = reason or unfit
            passed_over.add(channel.channel_id)
    return None, reason


def fits_one_call(fitted: Fit, request: EmbeddingRequest) -> bool:
    """Whether the whole request is one call exactly as the client sent it."""
    capabilities = fitted.capabilities
    return (
        fitted.truncate_to is None
        and not fitted.decode_tokens
        and request.input_count <= capabilities.items_per_call
        and (
            capabilities.tokens_per_call is None
            or request.total_tokens <= capabilities.tokens_per_call
        )
    )


def whole(fitted: Fit, request: EmbeddingRequest) -> Shard:
    """The request as one call, sent as the client sent it."""
    return Shard(
        model=fitted.channel.upstream_model,
        items=request.items,
        input=request.input,
        dimensions=fitted.dimensions,
        encoding_format=request.encoding_format,
        options=options(fitted.channel, request),
        user=request.user,
    )


def options(channel: ChannelRoute, request: EmbeddingRequest) -> dict[str, str]:
    """The client's provider options over the channel's defaults."""
    return {**channel.options, **request.options}


def split(
    fitted: Fit, request: EmbeddingRequest, positions: Sequence[int]
) -> Iterator[tuple[list[int], Shard]]:
    """The items at ``positions`` (indexes into the request's items), in
    order, as calls that fit the channel: each with the positions it carries."""
    capabilities = fitted.capabilities
    items, counts = request.items, request.token_counts
    per_call, tokens_per_call = capabilities.items_per_call, capabilities.tokens_per_call
    chosen = options(fitted.channel, request)
    # Ask for base64 where the provider answers it: exact float32, a third
    # of the bytes of JSON floats, and no float parsing.
    encoding_format = "base64" if capabilities.base64 else None
    batch: list[int] = []
    batch_tokens = 0
    for position in positions:
        if batch and (
            len(batch) == per_call
            or (tokens_per_call is not None and batch_tokens + counts[position] > tokens_per_call)
        ):
            yield batch, _shard(fitted, request, batch, items, chosen, encoding_format)
            batch, batch_tokens = [], 0
        batch.append(position)
        batch_tokens += counts[position]
    if batch:
        yield batch, _shard(fitted, request, batch, items, chosen, encoding_format)


def _shard(
    fitted: Fit,
    request: EmbeddingRequest,
    positions: list[int],
    items: tuple,
    chosen: dict[str, str],
    encoding_format: str | None,
) -> Shard:
    picked = tuple(
        tokens.decode(items[p])
        if fitted.decode_tokens and not isinstance(items[p], str)
        else items[p]
        for p in positions
    )
    return Shard(
        model=fitted.channel.upstream_model,
        items=picked,
        input=[list(item) if isinstance(item, tuple) else item for item in picked],
        dimensions=fitted.dimensions,
        encoding_format=encoding_format,
        options=chosen,
        user=request.user,
    )
