"""What the operator console's tests share: the audit trail and every operator URL."""

from __future__ import annotations

from django.urls import URLPattern, reverse

from accounts.models import ApiKey, AuditEvent, Group, GroupModel, Tenant
from billing import redemption
from billing.models import BasePrice, RedemptionBatch
from console.operator.urls import urlpatterns as operator_routes
from relay.models import Channel
from tests.helpers import SMALL, make_channel


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def operator_urls(client) -> list[str]:
    """Every operator route, with ids of objects that exist."""
    tenant = Tenant.objects.order_by("pk").first() or Tenant.objects.create(slug="t", name="T")
    group = Group.objects.order_by("pk").first() or Group.objects.create(name="g")
    if not GroupModel.objects.exists():
        GroupModel.objects.create(group=group, model=SMALL, price_per_mtok_nanos=1)
    channel = Channel.objects.order_by("pk").first() or make_channel(group, "http://127.0.0.1:9/v1")
    price, _ = BasePrice.objects.get_or_create(model=SMALL, defaults={"price_per_mtok_nanos": 1})
    key = (
        ApiKey.objects.filter(tenant=tenant).first()
        or ApiKey.issue(tenant=tenant, group=group, name="walk")[0]
    )
    # Made through the store, not the audited action: some callers expect no audit events.
    batch = (
        RedemptionBatch.objects.order_by("pk").first()
        or redemption.make_batch(count=1, value_nanos=1).batch
    )
    ids = {
        "tenant": tenant.pk,
        "group": group.pk,
        "channel": channel.pk,
        "price": price.pk,
        "code": batch.pk,
    }
    urls = []
    for route in operator_routes:
        assert isinstance(route, URLPattern)
        kwargs = {}
        if "pk" in route.pattern.converters:
            kwargs["pk"] = next(v for k, v in ids.items() if route.name.startswith(k))
        if "key_pk" in route.pattern.converters:
            kwargs["key_pk"] = key.pk
        if "code_pk" in route.pattern.converters:
            kwargs["code_pk"] = batch.codes.first().pk
        urls.append(reverse(f"operator:{route.name}", kwargs=kwargs))
    return urls
