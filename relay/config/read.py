"""Reading the config file's values: each reader names the entry and field it
refuses (``ConfigError``).

None of them repeats a text value in its message: the value might be a
credential or a secret, and the message ends up on a terminal or in CI logs.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from billing.pricing import to_nanos

# The columns behind PositiveIntegerField / IntegerField / BigIntegerField.
MAX_INT = 2**31 - 1
MAX_NANOS = 2**63 - 1
_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class ConfigError(Exception):
    """A file the command refuses; the message names the entry and the field."""


def describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def section(data: dict, name: str) -> dict:
    return mapping(data.get(name), where=name)


def mapping(value: object, *, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {describe(value)}")
    return value


def entry(
    entry: object, *, where: str, allowed: set[str], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    fields = mapping(entry, where=where)
    unknown = sorted(str(name) for name in fields if name not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )
    for name in required:
        if fields.get(name) is None:
            raise ConfigError(f"{where}.{name}: required")
    return fields


def text(value: object, *, where: str, max_length: int | None = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected non-empty text, got {describe(value)}")
    if max_length is not None and len(value) > max_length:
        raise ConfigError(f"{where}: longer than {max_length} characters")
    return value


def slug(value: object, *, where: str) -> str:
    name = text(value, where=where, max_length=100)
    if not set(name) <= _SLUG_CHARS:
        raise ConfigError(f"{where}: {name!r} is not a valid name (letters, digits, - and _)")
    return name


def names(value: object, *, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {describe(value)}")
    listed = tuple(text(item, where=f"{where}[{i}]") for i, item in enumerate(value))
    for i, name in enumerate(listed):
        if name in listed[:i]:
            raise ConfigError(f"{where}: {name!r} is listed twice")
    return listed


def slugs(value: object, *, where: str) -> tuple[str, ...]:
    listed = names(value, where=where)
    for i, name in enumerate(listed):
        slug(name, where=f"{where}[{i}]")
    return listed


def whole_number(value: object, *, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
        raise ConfigError(f"{where}: expected a whole number from {minimum} to {MAX_INT}")
    return value


def limit(value: object, *, where: str) -> int | None:
    if value is None:
        return None
    # 0 is refused rather than read as "unlimited" (as some relays do) or as
    # "blocked": omitting the field is the one way to say unlimited.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        raise ConfigError(f"{where}: expected a whole number >= 1 (omit it for unlimited)")
    return value


def boolean(value: object, *, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {describe(value)}")
    return value


def choice(value: object, choices: list[str], *, where: str) -> str | None:
    if value is not None and value not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(choices)}")
    return value  # type: ignore[return-value]


def decimal(value: object, *, where: str) -> Decimal:
    # YAML reads an unquoted 0.02 as a float. str() gives back the shortest
    # digits that float came from ("0.02"), which Decimal keeps exactly; the
    # float itself is never used in arithmetic.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: expected a decimal number, got {describe(value)}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where}: expected a number >= 0, got {value}")
    return number


def nanos(value: object, *, where: str) -> int:
    """An amount in currency units as integer nano-units."""
    try:
        nanos = to_nanos(decimal(value, where=where))
    except ValueError:
        raise ConfigError(f"{where}: {value} is more precise than 9 decimal places") from None
    if nanos > MAX_NANOS:
        raise ConfigError(f"{where}: {value} is too large")
    return nanos


def ratio(value: object, *, where: str) -> Decimal:
    ratio = decimal(value, where=where)
    # Group.price_ratio is DECIMAL(12, 6): refuse here what the column would.
    if ratio >= 10**6 or ratio != ratio.quantize(Decimal("0.000001")):
        raise ConfigError(f"{where}: expected below 1000000 with at most 6 decimal places")
    return ratio
