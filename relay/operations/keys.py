"""The operator's writes to API keys, for every door (consoles, operator API,
config file): keys issued in bulk, one named key created (its secret
generated, or imported from another relay) or updated, a key revoked. Each
is audited in the same transaction; a secret is returned once, never logged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from accounts import keys as key_secrets
from accounts.models import ApiKey, Group, Tenant
from relay.operations.rules import ActionRefused, audit
from relay.operations.writes import assign, unique_name

MAX_BULK_KEYS = 1000
KEY_FIELDS = ("group", "limit_rpm", "limit_tpm", "limit_concurrency", "allowed_models", "expires")


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"IssuedKey({self.key.name!r})"


def issue_keys(
    *, actor, tenant: Tenant, group: Group, count: int, name_prefix: str, door: str | None = None
) -> list[IssuedKey]:
    """``count`` fresh keys named ``<prefix>-0001`` ...; the secrets exist only
    in the return value (the database keeps their digests)."""
    if not 1 <= count <= MAX_BULK_KEYS:
        raise ActionRefused(
            _("Issue from 1 to %(most)d keys at a time.") % {"most": MAX_BULK_KEYS}, field="count"
        )
    width = max(4, len(str(count)))
    issued: list[IssuedKey] = []
    for number in range(1, count + 1):
        key = ApiKey(tenant=tenant, group=group, name=f"{name_prefix}-{number:0{width}d}")
        secret = key_secrets.generate_secret()
        key.set_secret(secret)
        issued.append(IssuedKey(key=key, secret=secret))
    with transaction.atomic():
        # One INSERT for the batch: a thousand keys in one round trip.
        ApiKey.objects.bulk_create([item.key for item in issued])
        audit(
            actor=actor,
            door=door,
            action="keys.issued",
            target=f"{tenant.slug}/{name_prefix}-*",
            tenant=tenant,
            group=group.name,
            count=count,
            prefixes=[item.key.prefix for item in issued][:20],
        )
    return issued


def create_key(
    *,
    actor,
    tenant: Tenant,
    name: str,
    fields: Mapping[str, object],
    secret: str | None = None,
    door: str | None = None,
) -> IssuedKey:
    """One key named ``name`` with ``fields`` (KEY_FIELDS; ``group`` needed):
    ``secret`` imported from another relay, else a fresh one generated.
    Operators may put a key in any group, not only those the tenant may issue
    keys in itself (Tenant.groups limits self-service only)."""
    values = {field: fields[field] for field in KEY_FIELDS if field in fields}
    group = values.pop("group")
    _check_models(group, values.get("allowed_models", []))
    taken = _("Another key already uses this secret.")
    with unique_name(taken, field="secret"), transaction.atomic():
        if secret is None:
            key, secret = ApiKey.issue(tenant=tenant, group=group, name=name, **values)
        else:
            _check_secret(secret, key=None)
            key = ApiKey.import_secret(
                tenant=tenant, group=group, name=name, secret=secret, **values
            )
        audit(
            actor=actor,
            door=door,
            action="keys.issued",
            target=_target(tenant, name),
            tenant=tenant,
            group=group.name,
            count=1,
            imported=key.imported,
            prefixes=[key.prefix],
        )
    return IssuedKey(key=key, secret=secret)


def update_key(
    *,
    actor,
    key: ApiKey,
    fields: Mapping[str, object],
    secret: str | None = None,
    door: str | None = None,
) -> list[str]:
    """Change a key's group, limits, models or expiry (KEY_FIELDS), or replace
    its secret with an imported one; returns what changed ("secret" by name
    only)."""
    values = {field: fields[field] for field in KEY_FIELDS if field in fields}
    _check_models(values.get("group", key.group), values.get("allowed_models", key.allowed_models))
    taken = _("Another key already uses this secret.")
    with unique_name(taken, field="secret"), transaction.atomic():
        changed = assign(key, values)
        if secret is not None and key.digest != key_secrets.digest(secret):
            _check_secret(secret, key=key)
            key.set_secret(secret, imported=True)
            changed.append("secret")
        if changed:
            key.save()
            audit(
                actor=actor,
                door=door,
                action="key.updated",
                target=_target(key.tenant, key.name),
                tenant=key.tenant,
                changed=changed,
            )
    return changed


def revoke_key(*, actor, key: ApiKey, door: str | None = None) -> bool:
    if key.status == ApiKey.Status.REVOKED:
        return False
    with transaction.atomic():
        key.revoke()
        audit(
            actor=actor,
            door=door,
            action="key.revoked",
            target=_target(key.tenant, key.name),
            tenant=key.tenant,
            key=key.masked,
        )
    return True


def _target(tenant: Tenant, name: str) -> str:
    """A key's audit target: the operator's events name it by tenant and name."""
    return f"{tenant.slug}/{name}"


def _check_models(group: Group, allowed_models) -> None:
    """A key's allow-list names models its group serves, or it serves nothing."""
    served = set(group.models.values_list("model", flat=True))
    for model in allowed_models:
        if model not in served:
            raise ActionRefused(
                _("%(model)s is not a model of group %(group)s.")
                % {"model": model, "group": group.name},
                field="allowed_models",
            )


def _check_secret(secret: str, *, key: ApiKey | None) -> None:
    """Said plainly rather than left to the digest's unique constraint; the
    secret itself is never repeated."""
    if key_secrets.refused_without_lookup(secret):
        raise ActionRefused(
            _("This secret has the shape of a generated key but a wrong checksum."),
            field="secret",
        )
    others = ApiKey.objects.filter(digest=key_secrets.digest(secret))
    if key is not None:
        others = others.exclude(pk=key.pk)
    if others.exists():
        raise ActionRefused(_("Another key already uses this secret."), field="secret")
