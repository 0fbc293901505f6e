"""The file's ``tenants``: who may issue keys in which groups, and their
opening balance."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import Tenant
from billing.models import LedgerEntry
from relay.config import read, rows
from relay.operations import actions

FIELDS = {"name", "balance", "groups", "status"}
OPENING_BALANCE_REASON = "opening balance from config file"


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    groups: tuple[str, ...]
    status: str | None  # None leaves the tenant's status as it is
    balance_nanos: int | None


def parse(slug: str, entry: object) -> TenantSpec:
    where = f"tenants.{slug}"
    fields = read.entry(entry, where=where, allowed=FIELDS)
    balance = fields.get("balance")
    return TenantSpec(
        slug=slug,
        name=read.text(fields.get("name", slug), where=f"{where}.name"),
        groups=read.slugs(fields.get("groups"), where=f"{where}.groups"),
        status=read.choice(fields.get("status"), Tenant.Status.values, where=f"{where}.status"),
        balance_nanos=None if balance is None else read.nanos(balance, where=f"{where}.balance"),
    )


def apply(spec: TenantSpec) -> str:
    """The consoles' tenant functions: create or update, suspend or reactivate,
    and the opening balance as their top-up."""
    where = f"tenants.{spec.slug}"
    groups = rows.groups_named(spec.groups, where=f"{where}.groups")
    tenant = Tenant.objects.filter(slug=spec.slug).first()
    created = tenant is None
    with rows.refusals(where):
        if tenant is None:
            tenant = actions.create_tenant(
                actor=None, door="config", slug=spec.slug, name=spec.name, groups=groups
            )
            changed = []
        else:
            changed = actions.update_tenant(
                actor=None, door="config", tenant=tenant, name=spec.name, groups=groups
            )
        if spec.status is not None and actions.set_tenant_status(
            actor=None, door="config", tenant=tenant, status=spec.status
        ):
            changed.append("status")
        if spec.balance_nanos is not None and apply_opening_balance(
            tenant=tenant, nanos=spec.balance_nanos
        ):
            changed.append("opening balance")
    return rows.report("tenant", spec.slug, created=created, changed=changed)


def apply_opening_balance(*, tenant: Tenant, nanos: int) -> bool:
    """Give a tenant its opening balance: the console's top-up (a ledger
    entry and its ``balance.topped_up`` event), only while the tenant has no
    ledger at all, so re-applying the file never tops a tenant up twice or
    overwrites what it has spent. Returns whether it wrote the entry.

    apply_config's advisory lock keeps two applies from both finding no ledger."""
    if nanos <= 0 or LedgerEntry.objects.for_tenant(tenant).exists():
        return False
    actions.top_up(
        actor=None,
        door="config",
        tenant=tenant,
        amount_nanos=nanos,
        reason=OPENING_BALANCE_REASON,
    )
    return True
