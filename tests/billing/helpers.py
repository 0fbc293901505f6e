"""Helpers the billing tests share (those of every package are tests/helpers.py)."""

from __future__ import annotations

from tests.helpers import CeleryWorker


def restart_if_dead(celery_worker: CeleryWorker) -> None:
    """Start the session's worker again if a test killed it and failed before
    starting it, so the tests after it still have one."""
    if celery_worker.process is None or celery_worker.process.poll() is not None:
        celery_worker.start()
