"""What the config file's objects share when applied: the groups they name,
an operations refusal turned into the file's error, and the report line.

The writes themselves are relay/operations' (the consoles' own functions,
``door="config"``, no actor): the same guards, price rule and audit events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from accounts.models import Group
from relay.config.read import ConfigError
from relay.operations import actions

# Model attributes (and the consoles' field names) under the name the file uses.
_LABELS = {
    "limit_rpm": "rpm",
    "limit_tpm": "tpm",
    "limit_concurrency": "concurrency",
    "price_per_mtok_nanos": "price",
    "allowed_models": "models",
    "amount": "balance",
}


def groups_named(names: tuple[str, ...], *, where: str) -> list[Group]:
    """Groups from this file (already applied) or already in the database."""
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    for name in names:
        if name not in found:
            raise ConfigError(f"{where}: unknown group {name!r}")
    return [found[name] for name in names]


@contextmanager
def refusals(where: str) -> Iterator[None]:
    """A rule of relay/operations that refuses the change (ActionRefused)
    becomes the file's error: the entry and field, and the consoles' reason.
    Raised inside apply_config's transaction, it rolls back the whole file."""
    try:
        yield
    except actions.ActionRefused as refused:
        if refused.field:
            where = f"{where}.{_LABELS.get(refused.field, refused.field)}"
        raise ConfigError(f"{where}: {refused.message}") from None


def report(kind: str, name: str, *, created: bool, changed: list[str]) -> str:
    """The report line of one object; ``changed`` names fields, never values."""
    if created:
        return f"created {kind} {name}"
    if changed:
        return f"updated {kind} {name} ({', '.join(_LABELS.get(c, c) for c in changed)})"
    return f"unchanged {kind} {name}"
