"""Channel health's Celery tasks: tripped channels out of rotation, due
probes of those taken out, and the operator's "test all channels"."""

from __future__ import annotations

from celery import shared_task

from relay.health import watch


@shared_task
def apply_trips() -> None:
    watch.apply_trips()


@shared_task
def probe_due() -> None:
    watch.probe_due()


@shared_task
def test_all(*, only_auto_disabled: bool = False) -> None:
    watch.test_all(only_auto_disabled=only_auto_disabled)
