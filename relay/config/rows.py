"""Writing the config file's objects: create what is missing, update what
differs, and say which in one report line per object."""

from __future__ import annotations

from typing import Any

from django.db import models

from accounts.models import Group
from relay.config.read import ConfigError
from relay.operations import actions

# Model attributes reported under the name the file uses for them.
_LABELS = {
    "limit_rpm": "rpm",
    "limit_tpm": "tpm",
    "limit_concurrency": "concurrency",
    "price_per_mtok_nanos": "price",
    "allowed_models": "models",
}


def upsert(
    model: type[models.Model], *, lookup: dict[str, Any], values: dict[str, Any]
) -> tuple[Any, bool, list[str]]:
    """The row matching ``lookup`` with ``values``; whether it was created; what changed."""
    obj, created = model.objects.get_or_create(**lookup, defaults=values)
    changed = [] if created else assign(obj, values)
    if changed:
        obj.save(update_fields=changed)
    return obj, created, changed


def assign(obj: models.Model, values: dict[str, Any]) -> list[str]:
    """Set the attributes whose value differs; return their names."""
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    return changed


def sync_models(related: Any, *, wanted: dict[str, Any], attr: str) -> tuple[bool, bool]:
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


def sync_m2m(related: Any, objects: list[models.Model], *, label: str) -> list[str]:
    if set(related.values_list("pk", flat=True)) == {obj.pk for obj in objects}:
        return []
    related.set(objects)
    return [label]


def groups_named(names: tuple[str, ...], *, where: str) -> list[Group]:
    """Groups from this file (already applied) or already in the database."""
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    for name in names:
        if name not in found:
            raise ConfigError(f"{where}: unknown group {name!r}")
    return [found[name] for name in names]


# The audit log's actions (relay.operations.actions.ACTIONS) for the file's objects.
_AUDITED = {
    "base price": ("price.set", "price.set"),
    "group": ("group.created", "group.updated"),
    "channel": ("channel.created", "channel.updated"),
    "tenant": ("tenant.created", "tenant.updated"),
    "key": ("keys.issued", "key.updated"),
}


def report(kind: str, name: str, *, created: bool, changed: list[str]) -> str:
    """The report line of one object, and its audit event when it was created
    or changed: the config file is a door like the consoles (actor: none)."""
    labels = [_LABELS.get(c, c) for c in changed]
    if created or changed:
        audited = _AUDITED[kind][0 if created else 1]
        # Names of what changed only: a credential or secret is never a value here.
        actions.audit_change(actor=None, action=audited, target=name, door="config", changed=labels)
    if created:
        return f"created {kind} {name}"
    if changed:
        return f"updated {kind} {name} ({', '.join(labels)})"
    return f"unchanged {kind} {name}"
