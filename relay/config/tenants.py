"""The file's ``tenants``: who may issue keys in which groups, and their
opening balance."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import Tenant
from billing import ledger
from billing.models import LedgerEntry
from relay.config import read, rows

FIELDS = {"name", "balance", "groups", "status"}


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
    groups = rows.groups_named(spec.groups, where=f"tenants.{spec.slug}.groups")
    values = {"name": spec.name}
    if spec.status is not None:
        values["status"] = spec.status
    tenant, created, changed = rows.upsert(Tenant, lookup={"slug": spec.slug}, values=values)
    changed += rows.sync_m2m(tenant.groups, groups, label="groups")
    if spec.balance_nanos is not None and apply_opening_balance(
        tenant=tenant, nanos=spec.balance_nanos
    ):
        changed.append("opening balance")
    return rows.report("tenant", spec.slug, created=created, changed=changed)


def apply_opening_balance(*, tenant: Tenant, nanos: int) -> bool:
    """Give a tenant its opening balance: one top-up, only while it has no
    ledger at all, so re-applying the file never tops a tenant up twice or
    overwrites what it has spent. Returns whether it wrote the entry."""
    if nanos <= 0 or LedgerEntry.objects.for_tenant(tenant).exists():
        return False
    ledger.top_up(tenant=tenant, amount_nanos=nanos, reason="opening balance from config file")
    return True
