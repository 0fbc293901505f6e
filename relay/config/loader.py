"""The operator's YAML config file: groups, channels, tenants and keys.

``manage.py apply_config relay.yaml`` calls :func:`load`, then
:func:`relay.config.apply.apply_config`. Loading reads and checks the file
without touching the database, so most mistakes fail before anything is
written; the checks that need the database (a name that refers to nothing, a
model nobody priced) run while applying, inside the one transaction, and
roll everything back. docs/config.md describes the schema.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from relay.config import channels, groups, keys, read, tenants
from relay.config.channels import ChannelSpec
from relay.config.groups import GroupSpec
from relay.config.keys import KeySpec
from relay.config.read import ConfigError
from relay.config.tenants import TenantSpec

TOP_LEVEL = {"currency", "base_prices", "groups", "channels", "tenants", "keys"}


@dataclass(frozen=True)
class Config:
    currency: str | None
    base_prices: dict[str, int]  # model -> nanos per million tokens
    groups: tuple[GroupSpec, ...]
    channels: tuple[ChannelSpec, ...]
    tenants: tuple[TenantSpec, ...]
    keys: tuple[KeySpec, ...]


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
        raise ConfigError(f"expected a mapping of sections at the top, got {read.describe(data)}")
    unknown = sorted(str(name) for name in data if name not in TOP_LEVEL)
    if unknown:
        allowed = ", ".join(sorted(TOP_LEVEL))
        raise ConfigError(f"{unknown[0]}: unknown top-level key (allowed: {allowed})")
    currency = data.get("currency")
    return Config(
        currency=None if currency is None else read.text(currency, where="currency"),
        base_prices={
            read.text(model, where="base_prices"): read.nanos(amount, where=f"base_prices.{model}")
            for model, amount in read.section(data, "base_prices").items()
        },
        groups=tuple(
            groups.parse(read.slug(name, where="groups"), entry)
            for name, entry in read.section(data, "groups").items()
        ),
        channels=tuple(
            channels.parse(read.slug(name, where="channels"), entry, environ=environ)
            for name, entry in read.section(data, "channels").items()
        ),
        tenants=tuple(
            tenants.parse(read.slug(name, where="tenants"), entry)
            for name, entry in read.section(data, "tenants").items()
        ),
        keys=keys.parse(data.get("keys")),
    )
