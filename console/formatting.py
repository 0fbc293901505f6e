"""How the consoles write money, counts and dates, in the reader's language.

Money arrives as integer nano-units and leaves as text through
``billing.pricing.from_nanos`` (a ``Decimal``); no float is ever involved.
Digits are grouped and the currency named by the Unicode CLDR rules of the
active language (Babel): ``1,234.50 USD`` in English, ``1,234.50 美元`` in
Chinese. Timestamps in tables stay ISO 8601 (``2025-03-10 14:05``) in every
language: unambiguous, sortable, and what Chinese consoles show; a date in a
sentence is written the language's way (``Mar 10, 2025``, ``2025年3月10日``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_decimal, get_currency_name
from django.conf import settings
from django.utils import translation

from billing.pricing import from_nanos

NANO = Decimal("0.000000001")
# Two decimals at least, all nine when they are not zero.
MONEY_PATTERN = "#,##0.00#######"


def locale() -> Locale:
    """The CLDR locale of the active language (``zh-hans`` -> ``zh_Hans``)."""
    code = translation.get_language() or settings.LANGUAGE_CODE
    try:
        return Locale.parse(translation.to_locale(code))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(translation.to_locale(settings.LANGUAGE_CODE))


def units(nanos: int | None) -> Decimal:
    """Currency units with all nine decimal places (exact), e.g. for CSV."""
    return from_nanos(nanos or 0).quantize(NANO)


def currency_name(code: str | None = None) -> str:
    """The operator's currency as the reader names it: the ISO code in English
    (``USD``), the CLDR name elsewhere (``美元``), the code when CLDR has none."""
    code = code or settings.CURRENCY
    where = locale()
    if where.language == "en":
        return code
    name = get_currency_name(code, locale=where)
    return name if name and name != code else code


def money(nanos: int | None, *, currency: bool = True) -> str:
    """``1,234.50 USD``: at least two decimals, more only when they are not zero.

    Embedding requests cost millionths of a unit, so rounding to cents would
    show most of a tenant's spend as 0.00.
    """
    text = format_decimal(units(nanos), format=MONEY_PATTERN, locale=locale())
    return f"{text} {currency_name()}" if currency else text


def thousands(count: int | None) -> str:
    return format_decimal(count or 0, format="#,##0", locale=locale())


def percent(rate: float | None) -> str:
    """An error rate (0..1) as ``2.50%``; a dash when nothing was asked."""
    if not isinstance(rate, int | float):
        return "–"
    return format_decimal(rate * 100, format="#,##0.00", locale=locale()) + "%"


def day(value: dt.date | None) -> str:
    """A date in a sentence: ``Mar 10, 2025`` / ``2025年3月10日``."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    return format_date(value, format="medium", locale=locale())
