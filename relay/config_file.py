"""The operator's YAML config file: groups, channels, tenants and keys.

``manage.py apply_config relay.yaml`` calls :func:`load`, then
:func:`apply_config`. Loading reads and checks the file without touching the
database, so most mistakes fail before anything is written; the checks that
need the database (a name that refers to nothing, a model nobody priced) run
while applying, inside the one transaction, and roll everything back.
docs/config.md describes the schema.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.db import connection, models, transaction

from accounts import keys as secrets
from accounts.models import ApiKey, Group, Tenant
from billing import ledger
from billing.models import BasePrice, LedgerEntry
from billing.pricing import to_nanos
from relay.models import Channel
from relay.providers import PROVIDERS

# The columns behind PositiveIntegerField / IntegerField / BigIntegerField.
_MAX_INT = 2**31 - 1
_MAX_NANOS = 2**63 - 1
_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_MIN_SECRET_LENGTH = 20
# Any constant will do; it only has to be the same for every apply_config run.
_APPLY_LOCK_ID = 7_265_108_097_121

_TOP_LEVEL = {"currency", "base_prices", "groups", "channels", "tenants", "keys"}
_GROUP_FIELDS = {"description", "models", "prices", "price_ratio", "rpm", "tpm", "concurrency"}
_CHANNEL_FIELDS = {
    "kind",
    "base_url",
    "api_key",
    "api_key_env",
    "models",
    "groups",
    "priority",
    "weight",
    "enabled",
}
_TENANT_FIELDS = {"name", "balance", "groups", "status"}
_KEY_FIELDS = {
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
# Model attributes reported under the name the file uses for them.
_LABELS = {
    "limit_rpm": "rpm",
    "limit_tpm": "tpm",
    "limit_concurrency": "concurrency",
    "price_per_mtok_nanos": "price",
    "allowed_models": "models",
}


class ConfigError(Exception):
    """A file the command refuses; the message names the entry and the field."""


@dataclass(frozen=True)
class GroupSpec:
    name: str
    description: str
    models: tuple[str, ...]
    prices: dict[str, int]  # model -> nanos per million tokens
    price_ratio: Decimal
    limit_rpm: int | None
    limit_tpm: int | None
    limit_concurrency: int | None


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: str
    base_url: str
    # None keeps the stored credential (one set in the admin, say); new channels get none.
    credential: str | None = field(repr=False)
    models: dict[str, str]  # public name -> provider's name, blank when the same
    groups: tuple[str, ...]
    priority: int
    weight: int
    enabled: bool


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    groups: tuple[str, ...]
    status: str | None  # None leaves the tenant's status as it is
    balance_nanos: int | None


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


@dataclass(frozen=True)
class Config:
    currency: str | None
    base_prices: dict[str, int]  # model -> nanos per million tokens
    groups: tuple[GroupSpec, ...]
    channels: tuple[ChannelSpec, ...]
    tenants: tuple[TenantSpec, ...]
    keys: tuple[KeySpec, ...]


# --- Reading the file --------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice is an error.

    PyYAML silently keeps the last of two entries with the same name; in this
    file that would drop a whole channel or group without a word.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the parent class reports it
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: {key} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(*, path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check the file at ``path``; nothing is written."""
    try:
        # An open file, not its text, so that YAML's errors name the file.
        with path.open(encoding="utf-8") as stream:
            data = yaml.load(stream, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as error:
        raise ConfigError(f"cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read the file: it is not UTF-8 text") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}") from None
    return parse(data, environ=os.environ if environ is None else environ)


def parse(data: object, *, environ: Mapping[str, str]) -> Config:
    """Check the loaded YAML and turn it into specs; credentials come from ``environ``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of sections at the top, got {_kind(data)}")
    unknown = sorted(str(name) for name in data if name not in _TOP_LEVEL)
    if unknown:
        allowed = ", ".join(sorted(_TOP_LEVEL))
        raise ConfigError(f"{unknown[0]}: unknown top-level key (allowed: {allowed})")
    currency = data.get("currency")
    return Config(
        currency=None if currency is None else _text(currency, where="currency"),
        base_prices={
            _text(model, where="base_prices"): _nanos(amount, where=f"base_prices.{model}")
            for model, amount in _section(data, "base_prices").items()
        },
        groups=tuple(
            _parse_group(_slug(name, where="groups"), entry)
            for name, entry in _section(data, "groups").items()
        ),
        channels=tuple(
            _parse_channel(_slug(name, where="channels"), entry, environ=environ)
            for name, entry in _section(data, "channels").items()
        ),
        tenants=tuple(
            _parse_tenant(_slug(name, where="tenants"), entry)
            for name, entry in _section(data, "tenants").items()
        ),
        keys=_parse_keys(data.get("keys")),
    )


def _parse_group(name: str, entry: object) -> GroupSpec:
    where = f"groups.{name}"
    fields = _fields(entry, where=where, allowed=_GROUP_FIELDS)
    group_models = _names(fields.get("models"), where=f"{where}.models")
    prices = {}
    for model, amount in _mapping(fields.get("prices"), where=f"{where}.prices").items():
        if model not in group_models:
            raise ConfigError(f"{where}.prices.{model}: not one of this group's models")
        prices[model] = _nanos(amount, where=f"{where}.prices.{model}")
    description = fields.get("description")
    if description is not None:
        description = _text(description, where=f"{where}.description", max_length=300)
    return GroupSpec(
        name=name,
        description=description or "",
        models=group_models,
        prices=prices,
        price_ratio=_ratio(fields.get("price_ratio", 1), where=f"{where}.price_ratio"),
        limit_rpm=_limit(fields.get("rpm"), where=f"{where}.rpm"),
        limit_tpm=_limit(fields.get("tpm"), where=f"{where}.tpm"),
        limit_concurrency=_limit(fields.get("concurrency"), where=f"{where}.concurrency"),
    )


def _parse_channel(name: str, entry: object, *, environ: Mapping[str, str]) -> ChannelSpec:
    where = f"channels.{name}"
    fields = _fields(entry, where=where, allowed=_CHANNEL_FIELDS, required=("base_url",))
    kind = fields.get("kind", Channel.Kind.OPENAI.value)
    if kind not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"{where}.kind: unknown kind {kind!r} (known: {known})")
    return ChannelSpec(
        name=name,
        kind=kind,
        base_url=_base_url(fields["base_url"], where=f"{where}.base_url"),
        credential=_credential(fields, where=where, environ=environ),
        models=_channel_models(fields.get("models"), where=f"{where}.models"),
        groups=_slugs(fields.get("groups"), where=f"{where}.groups"),
        priority=_int(fields.get("priority", 0), where=f"{where}.priority", minimum=-_MAX_INT),
        weight=_int(fields.get("weight", 1), where=f"{where}.weight", minimum=1),
        enabled=_bool(fields.get("enabled", True), where=f"{where}.enabled"),
    )


def _parse_tenant(slug: str, entry: object) -> TenantSpec:
    where = f"tenants.{slug}"
    fields = _fields(entry, where=where, allowed=_TENANT_FIELDS)
    balance = fields.get("balance")
    return TenantSpec(
        slug=slug,
        name=_text(fields.get("name", slug), where=f"{where}.name"),
        groups=_slugs(fields.get("groups"), where=f"{where}.groups"),
        status=_choice(fields.get("status"), Tenant.Status.values, where=f"{where}.status"),
        balance_nanos=None if balance is None else _nanos(balance, where=f"{where}.balance"),
    )


def _parse_keys(entries: object) -> tuple[KeySpec, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"keys: expected a list of keys, got {_kind(entries)}")
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
    fields = _fields(
        entry, where=f"keys[{index}]", allowed=_KEY_FIELDS, required=("tenant", "group", "name")
    )
    tenant = _slug(fields["tenant"], where=f"keys[{index}].tenant")
    name = _text(fields["name"], where=f"keys[{index}].name")
    where = f"keys[{index}] ({tenant}/{name})"
    secret = fields.get("secret")
    return KeySpec(
        index=index,
        tenant=tenant,
        group=_slug(fields["group"], where=f"{where}.group"),
        name=name,
        secret=None if secret is None else _secret(secret, where=f"{where}.secret"),
        limit_rpm=_limit(fields.get("rpm"), where=f"{where}.rpm"),
        limit_tpm=_limit(fields.get("tpm"), where=f"{where}.tpm"),
        limit_concurrency=_limit(fields.get("concurrency"), where=f"{where}.concurrency"),
        allowed_models=_names(fields.get("models"), where=f"{where}.models"),
        expires=_expires(fields.get("expires"), where=f"{where}.expires"),
        status=_choice(fields.get("status"), ApiKey.Status.values, where=f"{where}.status"),
    )


# --- Field readers: each names the entry and field it refuses ----------------
#
# None of them repeats a text value in its message: the value might be a
# credential or a secret, and the message ends up on a terminal or in CI logs.


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _section(data: dict, name: str) -> dict:
    return _mapping(data.get(name), where=name)


def _mapping(value: object, *, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
    return value


def _fields(
    entry: object, *, where: str, allowed: set[str], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    fields = _mapping(entry, where=where)
    unknown = sorted(str(name) for name in fields if name not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )
    for name in required:
        if fields.get(name) is None:
            raise ConfigError(f"{where}.{name}: required")
    return fields


def _text(value: object, *, where: str, max_length: int | None = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected non-empty text, got {_kind(value)}")
    if max_length is not None and len(value) > max_length:
        raise ConfigError(f"{where}: longer than {max_length} characters")
    return value


def _slug(value: object, *, where: str) -> str:
    name = _text(value, where=where, max_length=100)
    if not set(name) <= _SLUG_CHARS:
        raise ConfigError(f"{where}: {name!r} is not a valid name (letters, digits, - and _)")
    return name


def _names(value: object, *, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {_kind(value)}")
    names = tuple(_text(item, where=f"{where}[{i}]") for i, item in enumerate(value))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{where}: {name!r} is listed twice")
    return names


def _slugs(value: object, *, where: str) -> tuple[str, ...]:
    names = _names(value, where=where)
    for i, name in enumerate(names):
        _slug(name, where=f"{where}[{i}]")
    return names


def _int(value: object, *, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= _MAX_INT:
        raise ConfigError(f"{where}: expected a whole number from {minimum} to {_MAX_INT}")
    return value


def _limit(value: object, *, where: str) -> int | None:
    if value is None:
        return None
    # 0 is refused rather than read as "unlimited" (as some relays do) or as
    # "blocked": omitting the field is the one way to say unlimited.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_INT:
        raise ConfigError(f"{where}: expected a whole number >= 1 (omit it for unlimited)")
    return value


def _bool(value: object, *, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {_kind(value)}")
    return value


def _choice(value: object, choices: list[str], *, where: str) -> str | None:
    if value is not None and value not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(choices)}")
    return value  # type: ignore[return-value]


def _decimal(value: object, *, where: str) -> Decimal:
    # YAML reads an unquoted 0.02 as a float. str() gives back the shortest
    # digits that float came from ("0.02"), which Decimal keeps exactly; the
    # float itself is never used in arithmetic.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: expected a decimal number, got {_kind(value)}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where}: expected a number >= 0, got {value}")
    return number


def _nanos(value: object, *, where: str) -> int:
    """An amount in currency units as integer nano-units."""
    try:
        nanos = to_nanos(_decimal(value, where=where))
    except ValueError:
        raise ConfigError(f"{where}: {value} is more precise than 9 decimal places") from None
    if nanos > _MAX_NANOS:
        raise ConfigError(f"{where}: {value} is too large")
    return nanos


def _ratio(value: object, *, where: str) -> Decimal:
    ratio = _decimal(value, where=where)
    # Group.price_ratio is DECIMAL(12, 6): refuse here what the column would.
    if ratio >= 10**6 or ratio != ratio.quantize(Decimal("0.000001")):
        raise ConfigError(f"{where}: expected below 1000000 with at most 6 decimal places")
    return ratio


def _base_url(value: object, *, where: str) -> str:
    url = _text(value, where=where, max_length=500)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"{where}: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}: must start with http:// or https://")
    if not host or any(char.isspace() for char in url):
        raise ConfigError(f"{where}: not a valid URL (no host, or spaces)")
    return url


def _credential(fields: dict, *, where: str, environ: Mapping[str, str]) -> str | None:
    if "api_key" in fields and "api_key_env" in fields:
        raise ConfigError(f"{where}: give api_key or api_key_env, not both")
    if "api_key_env" in fields:
        variable = _text(fields["api_key_env"], where=f"{where}.api_key_env")
        credential = environ.get(variable, "")
        if not credential:
            raise ConfigError(
                f"{where}.api_key_env: the environment variable {variable} is not set or empty"
            )
        return credential
    if "api_key" in fields:
        return _text(fields["api_key"], where=f"{where}.api_key", max_length=None)
    return None


def _channel_models(value: object, *, where: str) -> dict[str, str]:
    """Public name -> the provider's name, blank when it is the same."""
    if value is None or isinstance(value, list):
        return {model: "" for model in _names(value, where=where)}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: expected a list of model names or a mapping of public name: "
            f"provider's name, got {_kind(value)}"
        )
    mapping = {}
    for public, upstream in value.items():
        public = _text(public, where=where)
        upstream = public if upstream is None else _text(upstream, where=f"{where}.{public}")
        mapping[public] = "" if upstream == public else upstream
    return mapping


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


# --- Applying ----------------------------------------------------------------


def apply_config(*, config: Config) -> list[str]:
    """Create what is missing and update what differs; one report line per object.

    Runs in one transaction: a ConfigError raised halfway (a channel naming a
    group that exists nowhere) rolls back everything already written. Nothing
    absent from the file is deleted, except a group's or channel's model rows,
    which the file lists in full.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Two deploy jobs applying at once would both see "missing" and both
            # insert; the second would die on a unique constraint mid-way.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPLY_LOCK_ID])
        lines = [_apply_base_price(model, nanos) for model, nanos in config.base_prices.items()]
        lines += [_apply_group(spec) for spec in config.groups]
        lines += [_apply_channel(spec) for spec in config.channels]
        lines += [_apply_tenant(spec) for spec in config.tenants]
        lines += [_apply_key(spec) for spec in config.keys]
    return lines


def apply_opening_balance(*, tenant: Tenant, nanos: int) -> bool:
    """Give a tenant its opening balance: one top-up, only while it has no
    ledger at all, so re-applying the file never tops a tenant up twice or
    overwrites what it has spent. Returns whether it wrote the entry."""
    if nanos <= 0 or LedgerEntry.objects.for_tenant(tenant).exists():
        return False
    ledger.top_up(tenant=tenant, amount_nanos=nanos, reason="opening balance from config file")
    return True


def _apply_base_price(model: str, nanos: int) -> str:
    _, created, changed = _upsert(
        BasePrice, lookup={"model": model}, values={"price_per_mtok_nanos": nanos}
    )
    return _report("base price", model, created=created, changed=changed)


def _apply_group(spec: GroupSpec) -> str:
    _check_priced(spec)
    group, created, changed = _upsert(
        Group,
        lookup={"name": spec.name},
        values={
            "description": spec.description,
            "price_ratio": spec.price_ratio,
            "limit_rpm": spec.limit_rpm,
            "limit_tpm": spec.limit_tpm,
            "limit_concurrency": spec.limit_concurrency,
        },
    )
    prices = {model: spec.prices.get(model) for model in spec.models}
    listed, repriced = _sync_models(group.models, wanted=prices, attr="price_per_mtok_nanos")
    if listed:
        changed.append("models")
    if repriced:
        changed.append("prices")
    return _report("group", spec.name, created=created, changed=changed)


def _check_priced(spec: GroupSpec) -> None:
    """A model with no price is never served (relay.catalog): refuse to list one."""
    unpriced = [model for model in spec.models if model not in spec.prices]
    priced = set(BasePrice.objects.filter(model__in=unpriced).values_list("model", flat=True))
    for model in unpriced:
        if model not in priced:
            raise ConfigError(
                f"groups.{spec.name}.models: {model} has no price; "
                "add it to base_prices or to this group's prices"
            )


def _apply_channel(spec: ChannelSpec) -> str:
    groups = _groups_named(spec.groups, where=f"channels.{spec.name}.groups")
    values = {
        "kind": spec.kind,
        "base_url": spec.base_url,
        "priority": spec.priority,
        "weight": spec.weight,
        "enabled": spec.enabled,
    }
    if spec.credential is not None:
        values["credential"] = spec.credential
    channel, created, changed = _upsert(Channel, lookup={"name": spec.name}, values=values)
    listed, renamed = _sync_models(channel.models, wanted=spec.models, attr="upstream_model")
    if listed or renamed:
        changed.append("models")
    changed += _sync_m2m(channel.groups, groups, label="groups")
    return _report("channel", spec.name, created=created, changed=changed)


def _apply_tenant(spec: TenantSpec) -> str:
    groups = _groups_named(spec.groups, where=f"tenants.{spec.slug}.groups")
    values = {"name": spec.name}
    if spec.status is not None:
        values["status"] = spec.status
    tenant, created, changed = _upsert(Tenant, lookup={"slug": spec.slug}, values=values)
    changed += _sync_m2m(tenant.groups, groups, label="groups")
    if spec.balance_nanos is not None and apply_opening_balance(
        tenant=tenant, nanos=spec.balance_nanos
    ):
        changed.append("opening balance")
    return _report("tenant", spec.slug, created=created, changed=changed)


def _apply_key(spec: KeySpec) -> str:
    # Operators may put a tenant's key in any group, not only the groups the
    # tenant may issue keys in itself (Tenant.groups limits self-service only).
    tenant = Tenant.objects.filter(slug=spec.tenant).first()
    if tenant is None:
        raise ConfigError(f"{spec.where}.tenant: unknown tenant {spec.tenant!r}")
    group = _groups_named((spec.group,), where=f"{spec.where}.group")[0]
    _check_key_models(spec, group)
    values = {
        "group": group,
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
    if not found:
        return _create_key(spec, tenant=tenant, values=values)
    return _update_key(spec, key=found[0], values=values)


def _check_key_models(spec: KeySpec, group: Group) -> None:
    served = set(group.models.values_list("model", flat=True))
    for model in spec.allowed_models:
        if model not in served:
            raise ConfigError(f"{spec.where}.models: {model} is not a model of group {group}")


def _create_key(spec: KeySpec, *, tenant: Tenant, values: dict[str, Any]) -> str:
    label = f"{tenant.slug}/{spec.name}"
    if spec.secret is None:
        key, secret = ApiKey.issue(tenant=tenant, name=spec.name, **values)
        line = f"created key {label}: {secret}  (shown once; store it now)"
    else:
        _check_secret_unused(spec, key=None)
        key = ApiKey.import_secret(tenant=tenant, name=spec.name, secret=spec.secret, **values)
        line = f"created key {label}"
    if spec.status == ApiKey.Status.REVOKED:
        key.revoke()
        # A secret nobody can use is not worth showing.
        line = f"created key {label} (revoked)"
    return line


def _update_key(spec: KeySpec, *, key: ApiKey, values: dict[str, Any]) -> str:
    revoked = key.status == ApiKey.Status.REVOKED
    if revoked and spec.status == ApiKey.Status.ACTIVE:
        raise ConfigError(
            f"{spec.where}.status: the key is revoked, and a revoked key stays revoked; "
            "issue a new key under another name"
        )
    changed = _assign(key, values)
    if spec.secret is not None and key.digest != secrets.digest(spec.secret):
        _check_secret_unused(spec, key=key)
        key.set_secret(spec.secret, imported=True)
        changed.append("secret")
    if changed:
        key.save()
    if spec.status == ApiKey.Status.REVOKED and not revoked:
        key.revoke()
        changed.append("status")
    return _report("key", f"{spec.tenant}/{spec.name}", created=False, changed=changed)


def _check_secret_unused(spec: KeySpec, *, key: ApiKey | None) -> None:
    """Say it plainly rather than fail on the digest's unique constraint."""
    others = ApiKey.objects.filter(digest=secrets.digest(spec.secret or ""))
    if key is not None:
        others = others.exclude(pk=key.pk)
    if others.exists():
        raise ConfigError(f"{spec.where}.secret: another key already uses this secret")


# --- Small helpers for rows ---------------------------------------------------


def _upsert(
    model: type[models.Model], *, lookup: dict[str, Any], values: dict[str, Any]
) -> tuple[Any, bool, list[str]]:
    """The row matching ``lookup`` with ``values``; whether it was created; what changed."""
    obj, created = model.objects.get_or_create(**lookup, defaults=values)
    changed = [] if created else _assign(obj, values)
    if changed:
        obj.save(update_fields=changed)
    return obj, created, changed


def _assign(obj: models.Model, values: dict[str, Any]) -> list[str]:
    """Set the attributes whose value differs; return their names."""
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    return changed


def _sync_models(related: Any, *, wanted: dict[str, Any], attr: str) -> tuple[bool, bool]:
    """Make a group's or channel's model rows exactly ``wanted`` (model -> ``attr``).

    Returns whether the set of models changed, and whether a kept row's
    ``attr`` changed.
    """
    existing = {row.model: row for row in related.all()}
    stale = existing.keys() - wanted.keys()
    if stale:
        related.filter(model__in=stale).delete()
    added = [model for model in wanted if model not in existing]
    for model in added:
        related.create(model=model, **{attr: wanted[model]})
    revalued = [
        row
        for model, row in existing.items()
        if model in wanted and getattr(row, attr) != wanted[model]
    ]
    for row in revalued:
        setattr(row, attr, wanted[row.model])
        row.save(update_fields=[attr])
    return bool(stale or added), bool(revalued)


def _sync_m2m(related: Any, objects: list[models.Model], *, label: str) -> list[str]:
    if set(related.values_list("pk", flat=True)) == {obj.pk for obj in objects}:
        return []
    related.set(objects)
    return [label]


def _groups_named(names: tuple[str, ...], *, where: str) -> list[Group]:
    """Groups from this file (already applied) or already in the database."""
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    for name in names:
        if name not in found:
            raise ConfigError(f"{where}: unknown group {name!r}")
    return [found[name] for name in names]


def _report(kind: str, name: str, *, created: bool, changed: list[str]) -> str:
    if created:
        return f"created {kind} {name}"
    if changed:
        return f"updated {kind} {name} ({', '.join(_LABELS.get(c, c) for c in changed)})"
    return f"unchanged {kind} {name}"
