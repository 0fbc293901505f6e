"""How every audited write of relay/operations is done: change only what
differs, say what changed (for the audit event), and turn a lost race on a
unique name into the same refusal as the check before it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import IntegrityError

from relay.operations.rules import ActionRefused

Row = TypeVar("Row")


@dataclass(frozen=True)
class Saved(Generic[Row]):
    """What a save did: the row, whether it made it, and the fields it
    changed (its audit event's ``changed``; the config file reports them)."""

    row: Row
    created: bool
    changed: list[str]


@contextmanager
def unique_name(message: str, *, field: str) -> Iterator[None]:
    """Two operators saving the same name at once both pass the check; the
    loser's unique violation becomes the same refusal, not a 500."""
    try:
        yield
    except IntegrityError:
        raise ActionRefused(message, field=field) from None


def refuse_taken(model, *, row, name: object, message: str) -> None:
    """Refuse ``name`` when another row of ``model`` has it (``row`` None: a new
    one); checked first so the refusal names the field, unique_name covering
    the race past it."""
    if name is None:
        return
    if model.objects.filter(name=name).exclude(pk=row.pk if row else None).exists():
        raise ActionRefused(message, field="name")


def assign(obj, values: Mapping[str, object]) -> list[str]:
    """Set the attributes whose value differs; return their names."""
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    return changed


def set_m2m(related, objects: Iterable) -> bool:
    wanted = {obj.pk for obj in objects}
    if set(related.values_list("pk", flat=True)) == wanted:
        return False
    related.set(list(objects))
    return True


def names(objects: Iterable) -> list[str]:
    return sorted(str(obj) for obj in objects)


def sync_models(related, wanted: Mapping[str, object], *, attr: str) -> tuple[bool, bool]:
    """Make the model rows exactly ``wanted`` (model -> ``attr``). Returns
    whether the set of models changed, and whether a kept row's ``attr`` did."""
    existing = {row.model: row for row in related.all()}
    stale = existing.keys() - wanted.keys()
    if stale:
        related.filter(model__in=stale).delete()
    listed = bool(stale)
    revalued = False
    for model, value in wanted.items():
        row = existing.get(model)
        if row is None:
            related.create(model=model, **{attr: value})
            listed = True
        elif getattr(row, attr) != value:
            setattr(row, attr, value)
            row.save(update_fields=[attr])
            revalued = True
    return listed, revalued
