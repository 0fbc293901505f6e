"""What a group may call, at what price, through which channels.

Loaded from PostgreSQL into plain frozen objects and cached per process for
``RELAY_CONFIG_CACHE_TTL_S``, so the hot path never queries the database for
configuration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from accounts.models import Group
from billing.models import BasePrice
from billing.pricing import apply_ratio, effective_price
from relay.lib.db import off_loop
from relay.lib.ttlcache import TTLCache
from relay.models import Channel
from relay.providers.base import ChannelRoute

log = logging.getLogger(__name__)


def channel_route(
    channel: Channel, upstream_model: str, *, truncatable: bool = False
) -> ChannelRoute:
    """The route through ``channel``, asking it for ``upstream_model``."""
    return ChannelRoute(
        channel_id=channel.pk,
        name=channel.name,
        kind=channel.kind,
        base_url=channel.base_url.rstrip("/"),
        credential=channel.credential,
        priority=channel.priority,
        weight=channel.weight,
        upstream_model=upstream_model,
        items_per_call=channel.items_per_call,
        tokens_per_call=channel.tokens_per_call,
        tokens_per_item=channel.tokens_per_item,
        options=channel.options,
        truncatable=truncatable,
    )


@dataclass(frozen=True)
class ModelRoute:
    model: str
    price_per_mtok_nanos: int
    channels: tuple[ChannelRoute, ...]
    # The price of an item answered from the embedding cache.
    cached_price_per_mtok_nanos: int = 0


@dataclass(frozen=True)
class CachePolicy:
    """The group's embedding cache: whose items may answer whose."""

    scope: str  # "tenant" or "global" (accounts.Group.CacheScope)

    def namespace(self, tenant_id: int) -> str:
        return f"t{tenant_id}" if self.scope == Group.CacheScope.TENANT else "global"


@dataclass(frozen=True)
class GroupRoutes:
    group_id: int
    limit_rpm: int | None
    limit_tpm: int | None
    limit_concurrency: int | None
    models: dict[str, ModelRoute]
    cache: CachePolicy | None = None  # None: the group does not cache


def load_group_routes(group_id: int) -> GroupRoutes | None:
    group = Group.objects.filter(pk=group_id).prefetch_related("models").first()
    if group is None:
        return None
    base_prices = dict(BasePrice.objects.values_list("model", "price_per_mtok_nanos"))
    channels = (
        Channel.objects.filter(groups=group, enabled=True)
        .prefetch_related("models")
        .order_by("priority", "pk")
    )
    served_by: dict[str, list[ChannelRoute]] = {}
    for channel in channels:
        for channel_model in channel.models.all():
            served_by.setdefault(channel_model.model, []).append(
                channel_route(
                    channel, channel_model.served_as, truncatable=channel_model.truncatable
                )
            )
    models: dict[str, ModelRoute] = {}
    for group_model in group.models.all():
        price = effective_price(
            group_model.price_per_mtok_nanos, base_prices.get(group_model.model), group.price_ratio
        )
        if price is None:
            # Serving a model nobody priced would give it away: leave it closed.
            log.warning(
                "group %s lists %s without a price; not serving it", group, group_model.model
            )
            continue
        models[group_model.model] = ModelRoute(
            model=group_model.model,
            price_per_mtok_nanos=price,
            channels=tuple(served_by.get(group_model.model, ())),
            cached_price_per_mtok_nanos=apply_ratio(price, group.cache_price_ratio),
        )
    return GroupRoutes(
        group_id=group.pk,
        limit_rpm=group.limit_rpm,
        limit_tpm=group.limit_tpm,
        limit_concurrency=group.limit_concurrency,
        models=models,
        cache=CachePolicy(group.cache_scope) if group.cache_enabled else None,
    )


_cache: TTLCache[GroupRoutes | None] = TTLCache(ttl_s=settings.RELAY_CONFIG_CACHE_TTL_S)
_load_async = off_loop(load_group_routes)


async def group_routes(group_id: int) -> GroupRoutes | None:
    return await _cache.get(group_id, lambda: _load_async(group_id))


def clear_cache() -> None:
    _cache.clear()
