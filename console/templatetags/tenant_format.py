"""Template filters of the tenant console: ``{{ x|money }}``, ``{{ n|thousands }}``,
``{{ day|day }}``, ``{{ code|label }}``; each writes in the reader's language
(console/formatting.py, console/labels.py)."""

from django import template

from console import formatting, labels

register = template.Library()


@register.filter
def money(nanos: int | None) -> str:
    return formatting.money(nanos)


@register.filter
def money_plain(nanos: int | None) -> str:
    return formatting.money(nanos, currency=False)


@register.filter
def thousands(count: int | None) -> str:
    return formatting.thousands(count)


@register.filter
def day(value) -> str:
    return formatting.day(value)


@register.filter
def label(code: str | None) -> str:
    return labels.label(code)
