"""Template filters of the tenant console: ``{{ x|money }}``, ``{{ n|thousands }}``."""

from django import template

from console import formatting

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
