"""What the tests of both consoles share: a realistic relay to look at.

``build_world`` fills the database the way a month of running a 中转站 would:
an operator, groups and prices, channels (one disabled, one with a long base
URL), tenants (one suspended, one with a long name), keys in every state,
members, a ledger, a month of usage with its rollups, and the audit trail the
operator's actions wrote. ``World.pages`` lists a page of each kind of both
consoles, with the person who may open it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, Membership, Tenant
from billing.models import UsageRecord
from billing.usage import roll_up
from console.labels import LABELS
from relay.health import state as health_state
from relay.models import KINDS, Channel
from relay.operations import actions
from tests.console.tenant.helpers import record
from tests.helpers import ADA, LARGE, SMALL

OPERATOR = ("opal", "pw-opal-operator-123")
OWNER = ("tess", "pw-tess-owner-123")
MEMBER = ("milo", "pw-milo-member-123")
BILLION = 10**9


@dataclass
class World:
    operator: object
    owner: object
    member: object
    tenant: Tenant
    key: ApiKey
    channel: Channel
    # (who, url): every page of both consoles, with realistic ids.
    pages: list[tuple[str, str]] = field(default_factory=list)
    # Every name, slug, model, masked key... shown as data (never translated).
    data: set[str] = field(default_factory=set)


def build_world(user_model) -> World:
    operator = user_model.objects.create_user(
        OPERATOR[0],
        email="opal@relay.example",
        password=OPERATOR[1],
        is_staff=True,
        is_superuser=True,
    )
    owner = user_model.objects.create_user(
        OWNER[0], email="tess@initech.example", password=OWNER[1]
    )
    member = user_model.objects.create_user(
        MEMBER[0], email="milo@initech.example", password=MEMBER[1]
    )

    for model, price in ((SMALL, 20_000_000), (LARGE, 130_000_000), (ADA, 100_000_000)):
        actions.set_base_price(actor=operator, model=model, price_per_mtok_nanos=price)
    standard = actions.save_group(
        actor=operator,
        group=None,
        fields={
            "name": "standard",
            "description": "Everyday embeddings at list price",
            "price_ratio": 1,
            "limit_rpm": 600,
            "limit_tpm": 1_000_000,
            "limit_concurrency": 20,
        },
        models={SMALL: None, LARGE: None, ADA: None},
    ).row
    vip = actions.save_group(
        actor=operator,
        group=None,
        fields={
            "name": "vip-enterprise-priority",
            "description": "Dedicated capacity",
            "price_ratio": "1.5",
            "limit_rpm": None,
            "limit_tpm": None,
            "limit_concurrency": None,
        },
        models={SMALL: 25_000_000, LARGE: None},
    ).row
    channel = actions.save_channel(
        actor=operator,
        channel=None,
        fields={
            "name": "openai-primary",
            "kind": "openai",
            "base_url": "https://api.openai-compatible-upstream.example.com/v1",
            "priority": 0,
            "weight": 3,
            "enabled": True,
        },
        credential="sk-upstream-world-0001",
        models={SMALL: "", LARGE: "", ADA: ""},
        groups=[standard, vip],
    ).row
    backup = actions.save_channel(
        actor=operator,
        channel=None,
        fields={
            "name": "azure-eastus-backup",
            "kind": "azure",
            "base_url": "https://initech-eastus.openai.azure.example.com",
            "priority": 1,
            "weight": 1,
            "enabled": True,
        },
        credential="azure-world-0002",
        models={SMALL: "embed-small-deployment-2024"},
        groups=[standard],
    ).row
    actions.set_channel_enabled(actor=operator, channel=backup, enabled=False)
    # One the relay took out of rotation (channel health), and one pinned.
    exhausted = actions.save_channel(
        actor=operator,
        channel=None,
        fields={
            "name": "jina-out-of-credit",
            "kind": "jina",
            "base_url": "https://api.jina-compatible-upstream.example.com/v1",
            "priority": 2,
            "weight": 1,
            "enabled": True,
        },
        credential="jina-world-0003",
        models={SMALL: ""},
        groups=[standard],
    ).row
    health_state.auto_disable(
        channel_id=exhausted.pk,
        reason="quota",
        detail="402 Insufficient balance. Please top up your API key.",
    )
    health_state.set_pinned(actor=operator, channel=channel, pinned=True)

    tenant = actions.create_tenant(
        actor=operator,
        slug="initech",
        name="Initech Intelligent Document Processing Holdings Ltd",
        groups=[standard, vip],
        limit_rpm=1200,
        limit_tpm=None,
        limit_concurrency=50,
    )
    Tenant.objects.filter(pk=tenant.pk).update(low_balance_threshold_nanos=5 * 10**9)
    suspended = actions.create_tenant(
        actor=operator, slug="globex", name="Globex", groups=[standard]
    )
    actions.set_tenant_status(actor=operator, tenant=suspended, status="suspended")
    actions.top_up(
        actor=operator, tenant=tenant, amount_nanos=250 * BILLION, reason="Bank transfer 2025-117"
    )
    actions.adjust(
        actor=operator,
        tenant=tenant,
        amount_nanos=-12_500_000_000,
        reason="Refund of a duplicate charge",
    )
    actions.top_up(actor=operator, tenant=suspended, amount_nanos=5 * BILLION)
    Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    Membership.objects.create(tenant=tenant, user=member, role=Membership.Role.MEMBER)
    AuditEvent.log(
        actor=operator, tenant=tenant, action="member.added", target=OWNER[0], role="owner"
    )

    now = timezone.now()
    key = ApiKey.issue(
        tenant=tenant,
        group=standard,
        name="production-search-indexer",
        spend_cap_nanos=100 * BILLION,
        limit_rpm=300,
        allowed_models=[SMALL, LARGE],
        allowed_ips=["203.0.113.0/24", "2001:db8::/32"],
        expires=now + dt.timedelta(days=90),
    )[0]
    batch = ApiKey.issue(tenant=tenant, group=vip, name="nightly-batch")[0]
    old = ApiKey.issue(tenant=tenant, group=standard, name="old-prototype")[0]
    actions.revoke_key(actor=operator, key=old)
    ApiKey.issue(tenant=tenant, group=standard, name="trial", expires=now - dt.timedelta(days=2))
    actions.issue_keys(
        actor=operator, tenant=tenant, group=standard, count=3, name_prefix="reseller"
    )
    AuditEvent.log(
        actor=owner,
        tenant=tenant,
        action="key.issued",
        target=f"{key.name} ({key.masked})",
        group=standard.name,
    )

    # Redemption codes: a batch for the tenant, one code redeemed by its owner.
    from billing import redemption as code_store
    from relay.operations import redemption as code_actions

    made = code_actions.create_batch(
        actor=operator,
        count=5,
        value_nanos=50 * BILLION,
        tenant=tenant,
        expires=now + dt.timedelta(days=30),
        name="Spring promotion 2025",
    )
    code_store.redeem(text=made.codes[0], tenant=tenant, user=owner)
    code_actions.void_code(actor=operator, code=made.batch.codes.unused().first())

    # A month of usage, up to noon yesterday (UTC), with its daily rollups.
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    noon = midnight - dt.timedelta(hours=12)
    rows = []
    combos = itertools.product(range(30), [key, batch], [SMALL, LARGE, ADA])
    for n, (days_ago, used, model) in enumerate(combos):
        status = "failed" if n % 9 == 0 else "served"
        row = record(
            used,
            created=noon - dt.timedelta(days=days_ago, minutes=n),
            model=model,
            status=status,
            tokens=1200 + 37 * n,
            n=n,
        )
        row.channel = channel if status == "served" else None
        row.end_user = f"customer-{n % 4}@shop.example"
        rows.append(row)
    UsageRecord.objects.bulk_create(rows)
    roll_up(rows)

    world = World(
        operator=operator, owner=owner, member=member, tenant=tenant, key=key, channel=channel
    )
    world.pages = _pages(world, groups=[standard], price_model=SMALL, member=member)
    world.data = data_words(world)
    return world


def _pages(world: World, *, groups, price_model: str, member) -> list[tuple[str, str]]:
    """Every GET page of both consoles (the sign-in page too), ids filled in."""
    from billing.models import BasePrice, RedemptionBatch

    tenant, key = world.tenant, world.key
    membership = Membership.objects.get(tenant=tenant, user=member)
    console = [
        reverse("console:dashboard"),
        reverse("console:keys"),
        reverse("console:key_issue"),
        reverse("console:key_detail", kwargs={"key_id": key.pk}),
        reverse("console:key_rename", kwargs={"key_id": key.pk}),
        reverse("console:key_revoke", kwargs={"key_id": key.pk}),
        reverse("console:usage"),
        reverse("console:members"),
        reverse("console:member_role", kwargs={"member_id": membership.pk}),
        reverse("console:member_remove", kwargs={"member_id": membership.pk}),
        reverse("console:audit"),
        reverse("console:redeem"),
        reverse("console:notifications"),
    ]
    price = BasePrice.objects.get(model=price_model)
    operator = [
        reverse("operator:home"),
        reverse("operator:tenants"),
        reverse("operator:tenant_create"),
        reverse("operator:tenant", args=[tenant.pk]),
        reverse("operator:tenant_edit", args=[tenant.pk]),
        reverse("operator:tenant_ledger", args=[tenant.pk]),
        reverse("operator:tenant_keys", args=[tenant.pk]),
        reverse("operator:tenant_keys_issue", args=[tenant.pk]),
        reverse("operator:groups"),
        reverse("operator:group_create"),
        reverse("operator:group", args=[groups[0].pk]),
        reverse("operator:prices"),
        reverse("operator:channels"),
        reverse("operator:channel_create"),
        reverse("operator:channel", args=[world.channel.pk]),
        reverse("operator:reports"),
        reverse("operator:audit"),
        reverse("operator:codes"),
        reverse("operator:code_batch", args=[RedemptionBatch.objects.get().pk]),
    ]
    assert price.pk  # the prices page lists it
    return (
        [("nobody", reverse("login"))]
        + [("owner", url) for url in console]
        + [("operator", url) for url in operator]
    )


def data_words(world: World) -> set[str]:
    """Every word the pages show as data: names, slugs, models, keys, emails..."""
    from accounts.models import Group
    from billing.models import LedgerEntry, RedemptionBatch, RedemptionCode

    texts: list[str] = []
    for user in (world.operator, world.owner, world.member):
        texts += [user.username, user.email]
    for tenant in Tenant.objects.all():
        texts += [tenant.slug, tenant.name]
    for group in Group.objects.all():
        texts += [group.name, group.description]
    for channel in Channel.objects.prefetch_related("models"):
        texts += [channel.name, channel.base_url, channel.disabled_detail]
        texts += [m.upstream_model for m in channel.models.all()]
    for key in ApiKey.objects.select_related("tenant"):
        texts += [key.name, key.masked, key.prefix, f"{key.tenant.slug}/{key.name}"]
    for row in UsageRecord.objects.all():
        texts += [row.request_id, row.model, row.served_model, row.end_user]
    texts += [entry.reason for entry in LedgerEntry.objects.all()]
    texts += [f"…{code.hint}" for code in RedemptionCode.objects.all()]
    texts += list(RedemptionBatch.objects.values_list("name", flat=True))
    # Providers' names (Azure OpenAI...); a kind that needs a word has one in LABELS.
    texts += [name for kind, name in KINDS if kind not in LABELS]
    for event in AuditEvent.objects.all():
        texts += [
            event.action,
            event.target,
            *map(str, event.detail.keys()),
            *map(str, event.detail.values()),
        ]
    return {text for text in texts if text}
