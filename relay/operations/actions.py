"""What an operator can change, shared by the operator console and the operator API.

Keyword-only functions. Each sensitive change writes its ``AuditEvent`` in the
same transaction as the change itself, so the log never shows a change that
rolled back, nor misses one that committed. Credentials and key secrets are
never part of an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import Group, Membership, Tenant
from billing import ledger
from billing.models import BasePrice, LedgerEntry
from billing.pricing import effective_price
from relay.models import Channel
from relay.operations.channels import (  # noqa: F401 (re-exported: the doors' one import)
    CHANNEL_FIELDS,
    channel_models,
    save_channel,
    set_channel_enabled,
)
from relay.operations.keys import (  # noqa: F401 (re-exported: the doors' one import)
    KEY_FIELDS,
    MAX_BULK_KEYS,
    IssuedKey,
    create_key,
    issue_keys,
    revoke_key,
    update_key,
)
from relay.operations.rules import (  # noqa: F401 (re-exported: the doors' one import)
    ActionRefused,
    audit,
    check_base_url,
    unpriced_models,
)
from relay.operations.writes import (  # noqa: F401 (Saved re-exported)
    Saved,
    assign,
    names,
    refuse_taken,
    set_m2m,
    sync_models,
    unique_name,
)

# The columns behind PositiveIntegerField and BigIntegerField.
MAX_INT = 2**31 - 1
MAX_NANOS = 2**63 - 1

TENANT_FIELDS = ("name", "limit_rpm", "limit_tpm", "limit_concurrency")
GROUP_FIELDS = (
    "name",
    "description",
    "price_ratio",
    "limit_rpm",
    "limit_tpm",
    "limit_concurrency",
    "cache_enabled",
    "cache_scope",
    "cache_price_ratio",
)

# Actions this module writes (the audit page offers them as filters).
ACTIONS = (
    "tenant.created",
    "tenant.updated",
    "tenant.suspended",
    "tenant.reactivated",
    "balance.topped_up",
    "balance.adjusted",
    "group.created",
    "group.updated",
    "price.set",
    "price.deleted",
    "channel.created",
    "channel.updated",
    "channel.enabled",
    "channel.disabled",
    "keys.issued",
    "key.revoked",
    "key.updated",
    # Written by channel health (relay/health/state.py).
    "channel.auto_disabled",
    "channel.auto_enabled",
    "channel.pinned",
    "channel.unpinned",
)


# --- Tenants and balances ----------------------------------------------------


def create_tenant(
    *, actor, slug: str, groups: Iterable[Group] = (), door: str | None = None, **fields
) -> Tenant:
    values = {name: fields[name] for name in TENANT_FIELDS if name in fields}
    taken = _("A tenant with this slug exists already.")
    with unique_name(taken, field="slug"), transaction.atomic():
        if Tenant.objects.filter(slug=slug).exists():
            raise ActionRefused(taken, field="slug")
        tenant = Tenant.objects.create(slug=slug, **values)
        tenant.groups.set(list(groups))
        audit(
            actor=actor,
            door=door,
            action="tenant.created",
            target=tenant.slug,
            tenant=tenant,
            groups=names(groups),
            **{k: v for k, v in values.items() if k != "name"},
        )
    return tenant


def update_tenant(
    *,
    actor,
    tenant: Tenant,
    groups: Iterable[Group] | None = None,
    door: str | None = None,
    **fields,
) -> list[str]:
    """Change the tenant's name, limits or groups; returns what changed."""
    values = {name: fields[name] for name in TENANT_FIELDS if name in fields}
    with transaction.atomic():
        changed = assign(tenant, values)
        if changed:
            tenant.save(update_fields=changed)
        if groups is not None and set_m2m(tenant.groups, groups):
            changed.append("groups")
        if changed:
            audit(
                actor=actor,
                door=door,
                action="tenant.updated",
                target=tenant.slug,
                tenant=tenant,
                changed=changed,
                **({"groups": names(tenant.groups.all())} if "groups" in changed else {}),
            )
    return changed


def set_tenant_status(*, actor, tenant: Tenant, status: str, door: str | None = None) -> bool:
    """Suspend or reactivate; returns whether anything changed."""
    if status not in Tenant.Status.values:
        raise ActionRefused(
            _("Unknown status %(status)s.") % {"status": repr(status)}, field="status"
        )
    with transaction.atomic():
        updated = Tenant.objects.filter(pk=tenant.pk).exclude(status=status).update(status=status)
        tenant.status = status
        if updated:
            suspended = status == Tenant.Status.SUSPENDED
            audit(
                actor=actor,
                door=door,
                action="tenant.suspended" if suspended else "tenant.reactivated",
                target=tenant.slug,
                tenant=tenant,
            )
    return bool(updated)


def add_member(
    *,
    actor,
    tenant: Tenant,
    username: str,
    role: str,
    password: str = "",
    email: str = "",
    door: str | None = None,
) -> Membership:
    """Give a person access to a tenant's console: an existing user, or a new
    one created with ``password`` (how an operator hands a tenant its first
    owner). Changes the role of an existing member."""
    if role not in Membership.Role.values:
        raise ActionRefused(_("Unknown role %(role)s.") % {"role": repr(role)}, field="role")
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            if len(password) < 10:
                raise ActionRefused(
                    _("A new user needs a password of at least 10 characters."),
                    field="password",
                )
            user = User.objects.create_user(username=username, email=email, password=password)
        membership, created = Membership.objects.update_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
        audit(
            actor=actor,
            door=door,
            action="member.added" if created else "member.role_changed",
            target=username,
            tenant=tenant,
            role=role,
        )
    return membership


def top_up(
    *, actor, tenant: Tenant, amount_nanos: int, reason: str = "", door: str | None = None
) -> LedgerEntry:
    """Credit the tenant: a ledger top-up and its ``balance.topped_up`` event."""
    if amount_nanos <= 0:
        raise ActionRefused(_("A top-up must be more than zero."), field="amount")
    with transaction.atomic():
        entry = ledger.top_up(
            tenant=tenant, amount_nanos=amount_nanos, reason=reason, created_by=actor
        )
        audit(
            actor=actor,
            door=door,
            action="balance.topped_up",
            target=tenant.slug,
            tenant=tenant,
            amount_nanos=amount_nanos,
            reason=reason,
            ledger_entry=entry.pk,
        )
    return entry


def adjust(
    *, actor, tenant: Tenant, amount_nanos: int, reason: str, door: str | None = None
) -> LedgerEntry:
    """A correction either way; refuses to take the balance below zero."""
    if not reason.strip():
        raise ActionRefused(_("An adjustment needs a reason."), field="reason")
    if amount_nanos == 0:
        raise ActionRefused(_("An adjustment of zero changes nothing."), field="amount")
    try:
        with transaction.atomic():
            entry = ledger.adjust(
                tenant=tenant, amount_nanos=amount_nanos, reason=reason.strip(), created_by=actor
            )
            audit(
                actor=actor,
                door=door,
                action="balance.adjusted",
                target=tenant.slug,
                tenant=tenant,
                amount_nanos=amount_nanos,
                reason=reason.strip(),
                ledger_entry=entry.pk,
            )
    except ledger.InsufficientBalance:
        held = ledger.balance_nanos(tenant)
        raise ActionRefused(
            _(
                "That would take the balance below zero: the tenant holds %(held)s nanos "
                "and the adjustment takes %(taken)s."
            )
            % {"held": held, "taken": -amount_nanos},
            field="amount",
        ) from None
    return entry


# --- Groups and prices -------------------------------------------------------


def _check_priced(models: Mapping[str, int | None]) -> None:
    """A model with no price is never served (relay.catalog.routes): refuse to list one."""
    missing = unpriced_models(models)
    if missing:
        raise ActionRefused(
            _("%(models)s: no price; give a price here or add a base price first.")
            % {"models": ", ".join(missing)},
            field="models",
        )


def save_group(
    *,
    actor,
    group: Group | None,
    fields: Mapping[str, object],
    models: Mapping[str, int | None] | None = None,
    channels: Iterable[Channel] | None = None,
    door: str | None = None,
) -> Saved[Group]:
    """Create (``group`` None) or update a group, its models with their own
    prices (None: base price x ratio) and the channels that serve it.
    ``changed`` says "models" when the set of models changed, "prices" when a
    kept model's own price did."""
    values = {name: fields[name] for name in GROUP_FIELDS if name in fields}
    taken = _("A group with this name exists already.")
    with unique_name(taken, field="name"), transaction.atomic():
        if models is not None:
            _check_priced(models)
        refuse_taken(Group, row=group, name=values.get("name"), message=taken)
        created = group is None
        if created:
            group = Group.objects.create(**values)
            changed = sorted(values)
        else:
            changed = assign(group, values)
            if changed:
                group.save(update_fields=changed)
        if models is not None:
            listed, repriced = sync_models(group.models, models, attr="price_per_mtok_nanos")
            if listed:
                changed.append("models")
            if repriced:
                changed.append("prices")
        if channels is not None and set_m2m(group.channels, channels):
            changed.append("channels")
        if created or changed:
            audit(
                actor=actor,
                door=door,
                action="group.created" if created else "group.updated",
                target=group.name,
                changed=changed,
                price_ratio=str(group.price_ratio),
                models={row.model: row.price_per_mtok_nanos for row in group.models.all()},
                channels=names(group.channels.all()),
            )
    return Saved(group, created, changed)


def set_base_price(
    *, actor, model: str, price_per_mtok_nanos: int, door: str | None = None
) -> Saved[BasePrice]:
    with transaction.atomic():
        price, created = BasePrice.objects.get_or_create(
            model=model, defaults={"price_per_mtok_nanos": price_per_mtok_nanos}
        )
        before = None if created else price.price_per_mtok_nanos
        changed = [] if created else assign(price, {"price_per_mtok_nanos": price_per_mtok_nanos})
        if changed:
            price.save(update_fields=changed)
        if created or changed:
            audit(
                actor=actor,
                door=door,
                action="price.set",
                target=model,
                price_per_mtok_nanos=price_per_mtok_nanos,
                previous_nanos=before,
            )
    return Saved(price, created, changed)


def delete_base_price(*, actor, price: BasePrice, door: str | None = None) -> None:
    """Refused while a group lists the model without a price of its own."""
    with transaction.atomic():
        relying = names(
            Group.objects.filter(
                models__model=price.model, models__price_per_mtok_nanos__isnull=True
            ).distinct()
        )
        if relying:
            raise ActionRefused(
                _(
                    "Groups %(groups)s price %(model)s from this base price; "
                    "give them a price of their own or remove the model first."
                )
                % {"groups": ", ".join(relying), "model": price.model}
            )
        audit(
            actor=actor,
            door=door,
            action="price.deleted",
            target=price.model,
            previous_nanos=price.price_per_mtok_nanos,
        )
        price.delete()


def base_prices() -> dict[str, int]:
    return dict(BasePrice.objects.values_list("model", "price_per_mtok_nanos"))


def effective_prices(group: Group, base: dict[str, int] | None = None) -> dict[str, int | None]:
    """Each of the group's models and what its keys are billed per million
    tokens (None: unpriced, so not served); ``base`` saves a query per group."""
    base = base_prices() if base is None else base
    prices: dict[str, int | None] = {}
    for row in group.models.all():
        prices[row.model] = effective_price(
            row.price_per_mtok_nanos, base.get(row.model), group.price_ratio
        )
    return prices
