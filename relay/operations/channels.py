"""The operator's writes to channels, for every door (consoles, operator API,
config file): audited in the same transaction as the change, the credential
written and never logged, a person's choice ending the relay's own disable
(relay/health/)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import Group
from relay.models import Channel
from relay.operations.rules import audit, check_base_url
from relay.operations.writes import (
    Saved,
    assign,
    names,
    refuse_taken,
    set_m2m,
    sync_models,
    unique_name,
)

CHANNEL_FIELDS = (
    "name",
    "kind",
    "base_url",
    "priority",
    "weight",
    "enabled",
    "items_per_call",
    "tokens_per_call",
    "tokens_per_item",
    "default_input_type",
    "default_task",
)


def save_channel(
    *,
    actor,
    channel: Channel | None,
    fields: Mapping[str, object],
    credential: str | None = None,
    models: Mapping[str, str] | None = None,
    groups: Iterable[Group] | None = None,
    truncatable: Iterable[str] | None = None,
    door: str | None = None,
) -> Saved[Channel]:
    """Create (``channel`` None) or update a channel. ``credential`` None or
    blank keeps the stored one; it is written, never logged nor returned.
    ``truncatable`` names the models (of ``models``) whose vectors the relay
    may cut to `dimensions`."""
    values = {name: fields[name] for name in CHANNEL_FIELDS if name in fields}
    if "base_url" in values:
        check_base_url(values["base_url"])
    was_enabled = channel.enabled if channel is not None else None
    taken = _("A channel with this name exists already.")
    with unique_name(taken, field="name"), transaction.atomic():
        refuse_taken(Channel, row=channel, name=values.get("name"), message=taken)
        created = channel is None
        if created:
            channel = Channel(**values)
            changed = sorted(values)
        else:
            changed = assign(channel, values)
            if "enabled" in changed:  # a person's choice ends the relay's own disable
                assign(channel, Channel.HEALTH_CLEARED)
        if credential:
            if created or credential != channel.credential:
                changed.append("credential")
            channel.credential = credential
        if created or changed:
            channel.save()
        if models is not None and any(sync_models(channel.models, models, attr="upstream_model")):
            changed.append("models")
        if truncatable is not None:
            marked = set(truncatable)
            cut = {row.model: row.model in marked for row in channel.models.all()}
            recut = any(sync_models(channel.models, cut, attr="truncatable"))
            if recut and "models" not in changed:
                changed.append("models")
        if groups is not None and set_m2m(channel.groups, groups):
            changed.append("groups")
        if created:
            audit(
                actor=actor,
                door=door,
                action="channel.created",
                target=channel.name,
                kind=channel.kind,
                base_url=channel.base_url,
                enabled=channel.enabled,
                credential_set=bool(channel.credential),
                models=names(channel.models.all()),
                groups=names(channel.groups.all()),
            )
        elif changed:
            # "credential" may be listed as changed; its value never is.
            audit(
                actor=actor,
                door=door,
                action="channel.updated",
                target=channel.name,
                changed=changed,
                **{name: values[name] for name in changed if name in values},
            )
            if "enabled" in changed:
                audit(
                    actor=actor,
                    door=door,
                    action="channel.enabled" if channel.enabled else "channel.disabled",
                    target=channel.name,
                    was_enabled=was_enabled,
                )
    return Saved(channel, created, changed)


def set_channel_enabled(*, actor, channel: Channel, enabled: bool, door: str | None = None) -> bool:
    with transaction.atomic():
        # A person's choice ends the relay's own disable (relay/health/).
        updated = (
            Channel.objects.filter(pk=channel.pk)
            .exclude(enabled=enabled)
            .update(enabled=enabled, **Channel.HEALTH_CLEARED)
        )
        channel.enabled = enabled
        if updated:
            audit(
                actor=actor,
                door=door,
                action="channel.enabled" if enabled else "channel.disabled",
                target=channel.name,
            )
    return bool(updated)


def channel_models(channel: Channel) -> dict[str, str]:
    return dict(channel.models.values_list("model", "upstream_model"))
