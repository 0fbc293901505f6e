"""How the tenant console writes money and counts.

Money arrives as integer nano-units and leaves as text through
``billing.pricing.from_nanos`` (a ``Decimal``); no float is ever involved.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from billing.pricing import from_nanos

NANO = Decimal("0.000000001")


def units(nanos: int | None) -> Decimal:
    """Currency units with all nine decimal places (exact), e.g. for CSV."""
    return from_nanos(nanos or 0).quantize(NANO)


def money(nanos: int | None, *, currency: bool = True) -> str:
    """``1,234.50 USD``: at least two decimals, more only when they are not zero.

    Embedding requests cost millionths of a unit, so rounding to cents would
    show most of a tenant's spend as 0.00.
    """
    whole, _, fraction = f"{units(nanos):,f}".partition(".")
    text = f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"
    return f"{text} {settings.CURRENCY}" if currency else text


def thousands(count: int | None) -> str:
    return f"{count or 0:,}"
