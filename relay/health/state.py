"""A channel's health written down: taken out of rotation by the relay,
put back by its probe, pinned by an operator. Each change is one
conditional UPDATE (so two workers, or a worker and a person, cannot both
act on one channel) with its audit event in the same transaction, and the
operator's notice queued once it committed.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from relay.health.probe import ProbeResult
from relay.models import Channel
from relay.notices import tasks as notice_tasks


def probe_delay(failed_probes: int) -> dt.timedelta:
    """The wait before the next probe: the base, doubled per failed probe, capped."""
    base_s = settings.RELAY_HEALTH_PROBE_BASE_S
    return dt.timedelta(
        seconds=min(base_s * 2 ** min(failed_probes, 20), settings.RELAY_HEALTH_PROBE_MAX_S)
    )


def auto_disable(*, channel_id: int, reason: str, detail: str) -> bool:
    """Take an enabled, unpinned channel out of rotation; False when it was
    not (gone, disabled already, or pinned)."""
    if reason not in Channel.DisabledReason.values:
        reason = Channel.DisabledReason.FAILURES
    now = timezone.now()
    with transaction.atomic():
        updated = Channel.objects.filter(pk=channel_id, enabled=True, pinned=False).update(
            enabled=False,
            disabled_reason=reason,
            disabled_at=now,
            disabled_detail=detail[:300],
            next_probe_at=now + probe_delay(0),
            probe_failures=0,
        )
        if not updated:
            return False
        channel = Channel.objects.get(pk=channel_id)
        AuditEvent.log(
            actor=None,
            action="channel.auto_disabled",
            target=channel.name,
            reason=reason,
            detail=channel.disabled_detail,
        )
        transaction.on_commit(lambda: notice_tasks.channel_changed.delay(channel_id, "disabled"))
    return True


def record_probe(*, channel: Channel, result: ProbeResult) -> bool:
    """Write a probe's result on the channel; an auto-disabled channel that
    passed is put back (True), one that failed waits longer for the next."""
    now = timezone.now()
    error = "" if result.ok else result.error[:300]
    with transaction.atomic():
        Channel.objects.filter(pk=channel.pk).update(
            last_probe_at=now, last_probe_ok=result.ok, last_probe_error=error
        )
        auto_disabled = Channel.objects.auto_disabled().filter(pk=channel.pk)
        if not result.ok:
            failed = channel.probe_failures + 1
            auto_disabled.update(probe_failures=failed, next_probe_at=now + probe_delay(failed))
            return False
        if not auto_disabled.update(enabled=True, **Channel.HEALTH_CLEARED):
            return False
        AuditEvent.log(
            actor=None,
            action="channel.auto_enabled",
            target=channel.name,
            was=channel.disabled_reason,
            latency_ms=result.latency_ms,
        )
        transaction.on_commit(lambda: notice_tasks.channel_changed.delay(channel.pk, "enabled"))
    return True


def set_pinned(*, actor, channel: Channel, pinned: bool) -> bool:
    """Pin (never auto-disabled) or unpin a channel; audited. A pinned
    channel that the relay had already disabled stays so until its probe
    passes or a person enables it."""
    with transaction.atomic():
        updated = Channel.objects.filter(pk=channel.pk).exclude(pinned=pinned).update(pinned=pinned)
        channel.pinned = pinned
        if updated:
            AuditEvent.log(
                actor=actor,
                action="channel.pinned" if pinned else "channel.unpinned",
                target=channel.name,
            )
    return bool(updated)
