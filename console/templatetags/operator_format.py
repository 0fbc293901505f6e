"""Template filters of the operator console: ``{{ nanos|money }}``, ``{{ row|error_rate }}``."""

from django import template

from console import formatting

register = template.Library()


@register.filter
def money(nanos: int | None) -> str:
    return formatting.money(nanos)


@register.filter
def thousands(count: int | None) -> str:
    return formatting.thousands(count)


@register.filter
def percent(rate: float | None) -> str:
    """An error rate (0..1) as ``2.50%``; a dash when nothing was asked."""
    if not isinstance(rate, int | float):
        return "–"
    return f"{rate * 100:.2f}%"
