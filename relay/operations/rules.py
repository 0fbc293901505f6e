"""The rules every door shares (console, operator API, config file): what
refuses a change, the base-URL guard, which models are priced, and how a
change's audit event names the door it came through.

Imported by ``actions`` (which re-exports them) and by nothing else here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from billing.models import BasePrice
from billing.pricing import effective_price
from relay.connections import egress


class ActionRefused(Exception):
    """The change would break a rule; the message says which, for people.

    Messages are translated when raised: the operator console reads them in
    its person's language, the operator API always in English (its requests
    run in English: console/language.py).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def check_base_url(url: str) -> None:
    """The one base-URL rule of every door (console, API, config file): http(s),
    and no address the egress guard refuses (cloud metadata, private ones not
    allowed). The connect-time guard still checks what a name resolves to."""
    try:
        egress.validate_base_url(url)
    except ValidationError as exc:
        raise ActionRefused(" ".join(exc.messages), field="base_url") from None


def unpriced_models(models: Mapping[str, int | None]) -> list[str]:
    """Of ``models`` (model -> its own price, None: none), those the price rule
    (billing.pricing.effective_price) would not serve: no own price, no base price.
    The ratio does not matter here, only whether there is anything to apply it to."""
    without_own = [model for model, price in models.items() if price is None]
    base = dict(
        BasePrice.objects.filter(model__in=without_own).values_list("model", "price_per_mtok_nanos")
    )
    return [
        model
        for model in models
        if effective_price(models[model], base.get(model), Decimal(1)) is None
    ]


def audit(
    *, actor, action: str, target: str, door: str | None = None, tenant=None, **detail
) -> AuditEvent:
    """The audit event of a change, in the caller's transaction. ``door`` marks
    a change that came through another door than the consoles (the config
    file: ``"config"``, with no actor); the consoles' events carry none.
    ``detail`` names what changed, never a credential or a secret."""
    if door is not None:
        detail["door"] = door
    return AuditEvent.log(actor=actor, action=action, target=target, tenant=tenant, **detail)
