"""The file's ``channels``: where a group's requests go, with what
credential, for which models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from relay.config import read, rows
from relay.config.read import ConfigError
from relay.models import DEFAULT_KIND, Channel
from relay.operations import actions
from relay.providers import PROVIDERS

FIELDS = {
    "kind",
    "base_url",
    "api_key",
    "api_key_env",
    "models",
    "groups",
    "priority",
    "weight",
    "enabled",
    "items_per_call",
    "tokens_per_call",
    "tokens_per_item",
    "input_type",
    "task",
    "truncatable",
}


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
    # None (not in the file) keeps a channel's state: re-applying the file at
    # every deploy must not undo a disable that channel health made. New: on.
    enabled: bool | None
    # Lower limits per call than the provider's; defaults for its options.
    items_per_call: int | None = None
    tokens_per_call: int | None = None
    tokens_per_item: int | None = None
    default_input_type: str = ""
    default_task: str = ""
    # Public model names whose vectors the relay may cut to `dimensions`.
    truncatable: tuple[str, ...] = ()


def parse(name: str, entry: object, *, environ: Mapping[str, str]) -> ChannelSpec:
    where = f"channels.{name}"
    fields = read.entry(entry, where=where, allowed=FIELDS, required=("base_url",))
    kind = fields.get("kind", DEFAULT_KIND)
    if kind not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"{where}.kind: unknown kind {kind!r} (known: {known})")
    return ChannelSpec(
        name=name,
        kind=kind,
        base_url=_base_url(fields["base_url"], where=f"{where}.base_url"),
        credential=_credential(fields, where=where, environ=environ),
        models=_channel_models(fields.get("models"), where=f"{where}.models"),
        groups=read.slugs(fields.get("groups"), where=f"{where}.groups"),
        priority=read.whole_number(
            fields.get("priority", 0), where=f"{where}.priority", minimum=-read.MAX_INT
        ),
        weight=read.whole_number(fields.get("weight", 1), where=f"{where}.weight", minimum=1),
        enabled=(
            None
            if fields.get("enabled") is None
            else read.boolean(fields["enabled"], where=f"{where}.enabled")
        ),
        items_per_call=read.limit(fields.get("items_per_call"), where=f"{where}.items_per_call"),
        tokens_per_call=read.limit(fields.get("tokens_per_call"), where=f"{where}.tokens_per_call"),
        tokens_per_item=read.limit(fields.get("tokens_per_item"), where=f"{where}.tokens_per_item"),
        default_input_type=_option(fields.get("input_type"), where=f"{where}.input_type"),
        default_task=_option(fields.get("task"), where=f"{where}.task"),
        truncatable=_truncatable(fields, where=where),
    )


def _option(value: object, *, where: str) -> str:
    return "" if value is None else read.text(value, where=where, max_length=64)


def _truncatable(fields: dict, *, where: str) -> tuple[str, ...]:
    names = read.names(fields.get("truncatable"), where=f"{where}.truncatable")
    served = _channel_models(fields.get("models"), where=f"{where}.models")
    for name in names:
        if name not in served:
            raise ConfigError(f"{where}.truncatable: {name} is not one of this channel's models")
    return names


def _base_url(value: object, *, where: str) -> str:
    url = read.text(value, where=where, max_length=500)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"{where}: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}: must start with http:// or https://")
    if not host or any(char.isspace() for char in url):
        raise ConfigError(f"{where}: not a valid URL (no host, or spaces)")
    # The address itself is the consoles' guard's, when the channel is saved.
    return url


def _credential(fields: dict, *, where: str, environ: Mapping[str, str]) -> str | None:
    if "api_key" in fields and "api_key_env" in fields:
        raise ConfigError(f"{where}: give api_key or api_key_env, not both")
    if "api_key_env" in fields:
        variable = read.text(fields["api_key_env"], where=f"{where}.api_key_env")
        credential = environ.get(variable, "")
        if not credential:
            raise ConfigError(
                f"{where}.api_key_env: the environment variable {variable} is not set or empty"
            )
        return credential
    if "api_key" in fields:
        return read.text(fields["api_key"], where=f"{where}.api_key", max_length=None)
    return None


def _channel_models(value: object, *, where: str) -> dict[str, str]:
    """Public name -> the provider's name, blank when it is the same."""
    if value is None or isinstance(value, list):
        return {model: "" for model in read.names(value, where=where)}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: expected a list of model names or a mapping of public name: "
            f"provider's name, got {read.describe(value)}"
        )
    mapping = {}
    for public, upstream in value.items():
        public = read.text(public, where=where)
        upstream = public if upstream is None else read.text(upstream, where=f"{where}.{public}")
        mapping[public] = "" if upstream == public else upstream
    return mapping


def apply(spec: ChannelSpec) -> str:
    """The console's save_channel: its base-URL guard refuses a cloud metadata
    or private address; a changed ``enabled`` ends the relay's own disable."""
    where = f"channels.{spec.name}"
    groups = rows.groups_named(spec.groups, where=f"{where}.groups")
    channel = Channel.objects.filter(name=spec.name).first()
    # ChannelSpec names its fields as the consoles do.
    fields = {name: getattr(spec, name) for name in actions.CHANNEL_FIELDS}
    if spec.enabled is None and channel:
        del fields["enabled"]  # not in the file: the stored state stays
    else:
        fields["enabled"] = spec.enabled is not False
    with rows.refusals(where):
        saved = actions.save_channel(
            actor=None,
            door="config",
            channel=channel,
            fields=fields,
            credential=spec.credential,
            models=spec.models,
            groups=groups,
            truncatable=spec.truncatable,
        )
    return rows.report("channel", spec.name, created=saved.created, changed=saved.changed)
