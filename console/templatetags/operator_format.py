"""Template filters of the operator console: ``{{ nanos|money }}``, ``{{ rate|percent }}``,
``{{ day|day }}``, ``{{ code|label }}``; each writes in the reader's language
(console/formatting.py, console/labels.py)."""

from django import template

from console import formatting, labels

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
    return formatting.percent(rate)


@register.filter
def day(value) -> str:
    return formatting.day(value)


@register.filter
def label(code: str | None, default: str | None = None) -> str:
    return labels.label(code, default)
