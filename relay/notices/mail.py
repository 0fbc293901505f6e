"""E-mail in the recipient's language: each person reads a notice in the
language they chose in the console (their Profile), else the site's default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.utils import translation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    email: str
    language: str  # a code of settings.LANGUAGES


def _language(code: str | None) -> str:
    return code if code and code in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def people(users) -> list[Recipient]:
    """The users of a queryset who have an address, with their language."""
    rows = users.exclude(email="").values_list("email", "console_profile__language")
    return [Recipient(email, _language(code)) for email, code in rows]


def operators() -> list[Recipient]:
    """RELAY_NOTIFY_EMAILS (each in the language of the staff user with that
    address, if any), else every active staff user with an address."""
    staff = get_user_model().objects.filter(is_active=True, is_staff=True)
    if not settings.RELAY_NOTIFY_EMAILS:
        return people(staff)
    known = {r.email.lower(): r.language for r in people(staff)}
    return [
        Recipient(email, known.get(email.lower(), _language(None)))
        for email in settings.RELAY_NOTIFY_EMAILS
    ]


def send(recipients: Iterable[Recipient], compose: Callable[[], tuple[str, str]]) -> int:
    """One mail per recipient, ``compose()`` (subject, body) run in their
    language; the number sent."""
    sent = 0
    for recipient in recipients:
        with translation.override(recipient.language):
            subject, body = compose()
        sent += send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient.email])
    return sent
