"""The notices' Celery tasks: thin, each re-reads what it needs."""

from __future__ import annotations

import logging

import httpx
from celery import shared_task

from relay.models import Channel
from relay.notices import channels, tenants, webhook

log = logging.getLogger(__name__)


@shared_task
def channel_changed(channel_id: int, change: str) -> None:
    """A channel was taken out of rotation ("disabled") or put back
    ("enabled") by the relay: e-mail the operators, then the webhook."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        return
    post_webhook.delay(channels.event(channel, change))
    channels.notify_by_mail(channel, change)


# A receiver that is down gets the event again, later: 6 tries over ~30 minutes.
@shared_task(
    autoretry_for=(httpx.HTTPError,),
    retry_backoff=60,
    retry_backoff_max=900,
    max_retries=5,
    retry_jitter=False,
)
def post_webhook(event: dict) -> None:
    webhook.post(event)


@shared_task
def low_balances() -> None:
    tenants.check_low_balances()


@shared_task
def expiring_keys() -> None:
    tenants.check_expiring_keys()
