"""Choosing the next channel: lowest priority tier first, weighted random
within the tier, never a channel this request already tried."""

from __future__ import annotations

import random
from collections.abc import Iterable

from relay.providers.base import ChannelRoute


def next_channel(
    channels: Iterable[ChannelRoute], tried: set[int], *, rng: random.Random | None = None
) -> ChannelRoute | None:
    untried = [c for c in channels if c.channel_id not in tried]
    if not untried:
        return None
    tier = min(c.priority for c in untried)
    candidates = [c for c in untried if c.priority == tier]
    if len(candidates) == 1:
        return candidates[0]
    return (rng or random).choices(candidates, weights=[c.weight for c in candidates])[0]
