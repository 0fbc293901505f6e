"""Operators' notices of a channel the relay took out of rotation or put back."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _

from relay.models import Channel
from relay.notices import mail


def event(channel: Channel, change: str) -> dict:
    """The webhook's body: what happened to which channel, why and when."""
    at = channel.disabled_at if change == "disabled" else timezone.now()
    return {
        "event": f"channel.{change}",
        "channel": {"id": channel.pk, "name": channel.name, "kind": channel.kind},
        "reason": channel.disabled_reason if change == "disabled" else "",
        "detail": channel.disabled_detail if change == "disabled" else "",
        "at": (at or timezone.now()).isoformat(),
    }


def compose(channel: Channel, change: str) -> tuple[str, str]:
    """Subject and body in the active language."""
    names = {"name": channel.name}
    if change == "disabled":
        subject = _("Channel %(name)s was taken out of rotation") % names
        body = _(
            "The relay took channel %(name)s out of rotation at %(at)s UTC.\n"
            "Reason: %(reason)s\nLast error: %(detail)s\n\n"
            "It is probed with a real embeddings call and put back when the probe passes."
        ) % {
            **names,
            "at": f"{channel.disabled_at:%Y-%m-%d %H:%M:%S}" if channel.disabled_at else "",
            "reason": channel.get_disabled_reason_display(),
            "detail": channel.disabled_detail or "-",
        }
    else:
        subject = _("Channel %(name)s is back in rotation") % names
        body = _("Channel %(name)s passed its probe and is back in rotation at %(at)s UTC.") % {
            **names,
            "at": f"{timezone.now():%Y-%m-%d %H:%M:%S}",
        }
    return subject, body


def notify_by_mail(channel: Channel, change: str) -> int:
    return mail.send(mail.operators(), lambda: compose(channel, change))
