"""Tenants' owners' notices: a balance below their threshold (once per
crossing) and keys about to expire (once per notice day).

Each notice is claimed by one conditional UPDATE before it is sent, so two
workers running the same check cannot both send it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import ApiKey, Membership, Tenant
from billing.pricing import from_nanos
from relay.notices import mail


def owners(tenant: Tenant) -> list[mail.Recipient]:
    users = get_user_model().objects.filter(
        is_active=True, memberships__tenant=tenant, memberships__role=Membership.Role.OWNER
    )
    return mail.people(users)


def _money(nanos: int) -> str:
    """``12.50 USD``: two decimals at least, more only when not zero."""
    whole, _dot, fraction = f"{from_nanos(nanos):f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')} {settings.CURRENCY}"


def check_low_balances() -> list[int]:
    """Notify the tenants whose balance just fell below their threshold and
    re-arm those back at or above it; the ids of the tenants notified."""
    with_threshold = Tenant.objects.filter(low_balance_threshold_nanos__isnull=False)
    # Back at or above the threshold (a top-up): the next fall is a new crossing.
    with_threshold.filter(
        low_balance_notified=True, balance__balance_nanos__gte=F("low_balance_threshold_nanos")
    ).update(low_balance_notified=False)
    notified = []
    below = with_threshold.filter(
        low_balance_notified=False, balance__balance_nanos__lt=F("low_balance_threshold_nanos")
    ).select_related("balance")
    for tenant in below:
        if not Tenant.objects.filter(pk=tenant.pk, low_balance_notified=False).update(
            low_balance_notified=True
        ):
            continue  # another worker claimed it
        balance, threshold = tenant.balance.balance_nanos, tenant.low_balance_threshold_nanos

        def compose(tenant=tenant, balance=balance, threshold=threshold):
            subject = _("%(tenant)s: balance below %(threshold)s") % {
                "tenant": tenant.name,
                "threshold": _money(threshold),
            }
            body = _(
                "The balance of %(tenant)s is %(balance)s, below the %(threshold)s you set.\n"
                "Top up to keep your API keys working. You will not be told again until the "
                "balance has been back above the threshold."
            ) % {"tenant": tenant.name, "balance": _money(balance), "threshold": _money(threshold)}
            return subject, body

        mail.send(owners(tenant), compose)
        notified.append(tenant.pk)
    return notified


def check_expiring_keys(now: dt.datetime | None = None) -> list[tuple[int, int]]:
    """Tell owners of active keys that expire within a notice's days
    (RELAY_KEY_EXPIRY_NOTICE_DAYS, 7 and 1 by default), once per notice;
    the (key id, days) pairs sent. A key that is already inside the last
    notice's days gets that one only."""
    now = now or timezone.now()
    sent = []
    days_list = settings.RELAY_KEY_EXPIRY_NOTICE_DAYS  # largest first
    furthest = now + dt.timedelta(days=days_list[0])
    keys = ApiKey.objects.active().filter(expires__lte=furthest).select_related("tenant")
    for key in keys:
        left = key.expires - now
        days = min(d for d in days_list if left <= dt.timedelta(days=d))
        not_yet = Q(expiry_notice_days__isnull=True) | Q(expiry_notice_days__gt=days)
        if not ApiKey.objects.filter(not_yet, pk=key.pk).update(expiry_notice_days=days):
            continue  # this notice (or a later one) went out already

        def compose(key=key, left=left):
            hours = max(int(left.total_seconds() // 3600), 0)
            subject = _("API key %(name)s expires soon") % {"name": key.name}
            body = ngettext(
                "The API key %(name)s (%(prefix)s…) of %(tenant)s expires at %(at)s UTC, "
                "in %(hours)d hour.",
                "The API key %(name)s (%(prefix)s…) of %(tenant)s expires at %(at)s UTC, "
                "in %(hours)d hours.",
                hours,
            ) % {
                "name": key.name,
                "prefix": key.prefix,
                "tenant": key.tenant.name,
                "at": f"{key.expires:%Y-%m-%d %H:%M}",
                "hours": hours,
            }
            return subject, body + "\n" + _("Issue a new key in the console before it does.")

        mail.send(owners(key.tenant), compose)
        sent.append((key.pk, days))
    return sent
