"""Prices and costs. All amounts are integer nano-units of the operator's currency."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

NANOS_PER_UNIT = 10**9
TOKENS_PER_PRICE_UNIT = 1_000_000


def cost_nanos(
    tokens: int,
    price_per_mtok_nanos: int,
    *,
    cached_tokens: int = 0,
    cached_price_per_mtok_nanos: int = 0,
) -> int:
    """The cost of ``tokens`` at ``price_per_mtok_nanos`` (nanos per million
    tokens), plus ``cached_tokens`` (answered from the embedding cache) at
    ``cached_price_per_mtok_nanos``.

    Rounding rule: exact integer arithmetic over both, then round half up to
    a whole nano-unit, once per request. The result is therefore within half
    a nano-unit of the exact cost, never more; tiny requests round to 0 only
    when they are really worth less than half a nano-unit.
    """
    if min(tokens, price_per_mtok_nanos, cached_tokens, cached_price_per_mtok_nanos) < 0:
        raise ValueError("tokens and prices must not be negative")
    exact = tokens * price_per_mtok_nanos + cached_tokens * cached_price_per_mtok_nanos
    return (exact + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT


def apply_ratio(base_price_nanos: int, ratio: Decimal) -> int:
    """A group's price from the base list price and its ratio, rounded half up."""
    return int((Decimal(base_price_nanos) * ratio).to_integral_value(rounding=ROUND_HALF_UP))


def effective_price(own_nanos: int | None, base_nanos: int | None, ratio: Decimal) -> int | None:
    """What a group's keys pay per million tokens of a model: the group's own
    price for it, else the base price times the group's ratio, else None: the
    model is not served (serving it would give it away).

    The one statement of the rule: the request path (relay.catalog.routes),
    the consoles and the config file (relay.operations) all read prices here.
    """
    if own_nanos is not None:
        return own_nanos
    if base_nanos is not None:
        return apply_ratio(base_nanos, ratio)
    return None


def to_nanos(amount: str | Decimal | int) -> int:
    """``"0.02"`` (currency units) to nano-units; refuses sub-nano precision."""
    value = Decimal(str(amount)) * NANOS_PER_UNIT
    if value != value.to_integral_value():
        raise ValueError(f"{amount!r} has more precision than one nano-unit")
    return int(value)


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_UNIT
