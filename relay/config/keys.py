"""The file's ``keys``: a tenant's API keys, generated (the secret printed
once) or imported from another relay, with their limits and expiry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accounts import keys as secrets
from accounts.models import ApiKey, Tenant
from relay.config import read, rows
from relay.config.read import ConfigError
from relay.operations import actions

FIELDS = {
    "tenant",
    "group",
    "name",
    "secret",
    "rpm",
    "tpm",
    "concurrency",
    "models",
    "expires",
    "status",
}
_MIN_SECRET_LENGTH = 20


@dataclass(frozen=True)
class KeySpec:
    index: int
    tenant: str
    group: str
    name: str
    secret: str | None = field(repr=False)
    limit_rpm: int | None
    limit_tpm: int | None
    limit_concurrency: int | None
    allowed_models: tuple[str, ...]
    expires: datetime | None
    status: str | None  # None leaves the key's status as it is

    @property
    def where(self) -> str:
        return f"keys[{self.index}] ({self.tenant}/{self.name})"


def parse(entries: object) -> tuple[KeySpec, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"keys: expected a list of keys, got {read.describe(entries)}")
    specs = tuple(_parse_key(index, entry) for index, entry in enumerate(entries))
    seen_names: dict[tuple[str, str], KeySpec] = {}
    seen_secrets: dict[str, KeySpec] = {}
    for spec in specs:
        earlier = seen_names.setdefault((spec.tenant, spec.name), spec)
        if earlier is not spec:
            raise ConfigError(f"{spec.where}: same tenant and name as keys[{earlier.index}]")
        if spec.secret is not None:
            earlier = seen_secrets.setdefault(spec.secret, spec)
            if earlier is not spec:
                raise ConfigError(f"{spec.where}.secret: same secret as keys[{earlier.index}]")
    return specs


def _parse_key(index: int, entry: object) -> KeySpec:
    fields = read.entry(
        entry, where=f"keys[{index}]", allowed=FIELDS, required=("tenant", "group", "name")
    )
    tenant = read.slug(fields["tenant"], where=f"keys[{index}].tenant")
    name = read.text(fields["name"], where=f"keys[{index}].name")
    where = f"keys[{index}] ({tenant}/{name})"
    secret = fields.get("secret")
    return KeySpec(
        index=index,
        tenant=tenant,
        group=read.slug(fields["group"], where=f"{where}.group"),
        name=name,
        secret=None if secret is None else _secret(secret, where=f"{where}.secret"),
        limit_rpm=read.limit(fields.get("rpm"), where=f"{where}.rpm"),
        limit_tpm=read.limit(fields.get("tpm"), where=f"{where}.tpm"),
        limit_concurrency=read.limit(fields.get("concurrency"), where=f"{where}.concurrency"),
        allowed_models=read.names(fields.get("models"), where=f"{where}.models"),
        expires=_expires(fields.get("expires"), where=f"{where}.expires"),
        status=read.choice(fields.get("status"), ApiKey.Status.values, where=f"{where}.status"),
    )


def _secret(value: object, *, where: str) -> str:
    if (
        not isinstance(value, str)
        or not value.startswith(secrets.SECRET_PREFIX)
        or len(value) < _MIN_SECRET_LENGTH
        or any(char.isspace() for char in value)
    ):
        raise ConfigError(
            f'{where}: must start with "{secrets.SECRET_PREFIX}" and be at least '
            f"{_MIN_SECRET_LENGTH} characters, without spaces"
        )
    if secrets.refused_without_lookup(value):
        # It has the shape of the relay's own keys, whose checksum it fails:
        # the relay would refuse it before looking it up.
        raise ConfigError(f"{where}: has the shape of a generated key but a wrong checksum")
    return value


def _expires(value: object, *, where: str) -> datetime | None:
    example = '"2027-01-01T00:00:00Z"'
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where}: not an ISO 8601 date-time such as {example}") from None
    # A bare date (YAML reads 2027-01-01 as one) has no time and no timezone.
    if not isinstance(value, datetime):
        raise ConfigError(f"{where}: expected an ISO 8601 date-time such as {example}")
    if value.utcoffset() is None:
        raise ConfigError(f"{where}: needs a timezone (Z or +hh:mm), as in {example}")
    return value


def apply(spec: KeySpec) -> str:
    """The consoles' key functions: create (the secret generated or imported),
    update, revoke."""
    tenant = Tenant.objects.filter(slug=spec.tenant).first()
    if tenant is None:
        raise ConfigError(f"{spec.where}.tenant: unknown tenant {spec.tenant!r}")
    fields = {
        "group": rows.groups_named((spec.group,), where=f"{spec.where}.group")[0],
        "limit_rpm": spec.limit_rpm,
        "limit_tpm": spec.limit_tpm,
        "limit_concurrency": spec.limit_concurrency,
        "allowed_models": list(spec.allowed_models),
        "expires": spec.expires,
    }
    found = list(ApiKey.objects.for_tenant(tenant).filter(name=spec.name)[:2])
    if len(found) > 1:
        raise ConfigError(
            f"{spec.where}.name: the tenant has several keys with this name; "
            "rename all but one in the console so the file can tell them apart"
        )
    with rows.refusals(spec.where):
        if not found:
            return _create_key(spec, tenant=tenant, fields=fields)
        return _update_key(spec, key=found[0], fields=fields)


def _create_key(spec: KeySpec, *, tenant: Tenant, fields: dict[str, Any]) -> str:
    label = f"{tenant.slug}/{spec.name}"
    issued = actions.create_key(
        actor=None, door="config", tenant=tenant, name=spec.name, fields=fields, secret=spec.secret
    )
    if spec.status == ApiKey.Status.REVOKED:
        actions.revoke_key(actor=None, door="config", key=issued.key)
        # A secret nobody can use is not worth showing.
        return f"created key {label} (revoked)"
    if spec.secret is None:
        return f"created key {label}: {issued.secret}  (shown once; store it now)"
    return f"created key {label}"


def _update_key(spec: KeySpec, *, key: ApiKey, fields: dict[str, Any]) -> str:
    revoked = key.status == ApiKey.Status.REVOKED
    if revoked and spec.status == ApiKey.Status.ACTIVE:
        raise ConfigError(
            f"{spec.where}.status: the key is revoked, and a revoked key stays revoked; "
            "issue a new key under another name"
        )
    changed = actions.update_key(
        actor=None, door="config", key=key, fields=fields, secret=spec.secret
    )
    if spec.status == ApiKey.Status.REVOKED and actions.revoke_key(
        actor=None, door="config", key=key
    ):
        changed.append("status")
    return rows.report("key", f"{spec.tenant}/{spec.name}", created=False, changed=changed)
