"""The file's ``base_prices`` and ``groups``: each group's models, prices,
price ratio and default limits."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounts.models import Group
from relay.config import read, rows
from relay.config.read import ConfigError
from relay.operations import actions

FIELDS = {
    "description",
    "models",
    "prices",
    "price_ratio",
    "rpm",
    "tpm",
    "concurrency",
    "cache",
}
CACHE_FIELDS = {"enabled", "scope", "price_ratio"}


@dataclass(frozen=True)
class GroupSpec:
    name: str
    description: str
    models: tuple[str, ...]
    prices: dict[str, int]  # model -> nanos per million tokens
    price_ratio: Decimal
    limit_rpm: int | None
    limit_tpm: int | None
    limit_concurrency: int | None
    # The embedding cache (relay/pipeline/cache.py): on, its scope, its price.
    cache_enabled: bool = False
    cache_scope: str = Group.CacheScope.TENANT
    cache_price_ratio: Decimal = Decimal("0.1")


def parse(name: str, entry: object) -> GroupSpec:
    where = f"groups.{name}"
    fields = read.entry(entry, where=where, allowed=FIELDS)
    group_models = read.names(fields.get("models"), where=f"{where}.models")
    prices = {}
    for model, amount in read.mapping(fields.get("prices"), where=f"{where}.prices").items():
        if model not in group_models:
            raise ConfigError(f"{where}.prices.{model}: not one of this group's models")
        prices[model] = read.nanos(amount, where=f"{where}.prices.{model}")
    description = fields.get("description")
    if description is not None:
        description = read.text(description, where=f"{where}.description", max_length=300)
    return GroupSpec(
        name=name,
        description=description or "",
        models=group_models,
        prices=prices,
        price_ratio=read.ratio(fields.get("price_ratio", 1), where=f"{where}.price_ratio"),
        limit_rpm=read.limit(fields.get("rpm"), where=f"{where}.rpm"),
        limit_tpm=read.limit(fields.get("tpm"), where=f"{where}.tpm"),
        limit_concurrency=read.limit(fields.get("concurrency"), where=f"{where}.concurrency"),
        **_cache(fields.get("cache"), where=f"{where}.cache"),
    )


def _cache(value: object, *, where: str) -> dict:
    """``cache: {enabled: true, scope: tenant, price_ratio: 0.1}``; absent: off."""
    if value is None:
        return {}
    fields = read.entry(value, where=where, allowed=CACHE_FIELDS)
    ratio = read.ratio(fields.get("price_ratio", "0.1"), where=f"{where}.price_ratio")
    if ratio > 1:
        raise ConfigError(f"{where}.price_ratio: at most 1 (a cached item never costs more)")
    return {
        "cache_enabled": read.boolean(fields.get("enabled", True), where=f"{where}.enabled"),
        "cache_scope": read.choice(
            fields.get("scope", Group.CacheScope.TENANT),
            Group.CacheScope.values,
            where=f"{where}.scope",
        ),
        "cache_price_ratio": ratio,
    }


def apply_base_price(model: str, nanos: int) -> str:
    with rows.refusals(f"base_prices.{model}"):
        saved = actions.set_base_price(
            actor=None, door="config", model=model, price_per_mtok_nanos=nanos
        )
    return rows.report("base price", model, created=saved.created, changed=saved.changed)


def apply(spec: GroupSpec) -> str:
    """The console's save_group: its price rule refuses a model nobody priced."""
    with rows.refusals(f"groups.{spec.name}"):
        saved = actions.save_group(
            actor=None,
            door="config",
            group=Group.objects.filter(name=spec.name).first(),
            # GroupSpec names its fields as the consoles do.
            fields={name: getattr(spec, name) for name in actions.GROUP_FIELDS},
            models={model: spec.prices.get(model) for model in spec.models},
        )
    return rows.report("group", spec.name, created=saved.created, changed=saved.changed)
