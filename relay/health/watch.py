"""Channel health's periodic work (relay/health/tasks.py runs it):

- ``apply_trips``: the channels the request path tripped (a Redis hash,
  relay/pipeline/channel_health.py) are taken out of rotation in PostgreSQL,
  which every web process's routes follow within RELAY_CONFIG_CACHE_TTL_S.
- ``probe_due``: each auto-disabled channel whose backoff has run out is
  probed with a real embeddings call in its provider's dialect
  (relay/health/probe.py), and put back when it passes.
- ``test_all``: every channel probed at once, for the operator's button;
  results are written on the channels, and an auto-disabled channel that
  passes is put back as by its own probe. A failing enabled channel is only
  reported: the request path's counts decide what to take out.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from billing import redis_url
from relay.health import state
from relay.health.probe import PROBE_TIMEOUT_S, probe
from relay.models import Channel
from relay.pipeline.channel_health import TRIPPED_KEY

log = logging.getLogger(__name__)

# A run of probes stops starting new ones past this, well inside the task's
# time limit (CELERY_TASK_TIME_LIMIT, 300 s): each probe may take up to
# PROBE_TIMEOUT_S, and the channels left are due again at the next run.
PROBE_BUDGET_S = 180.0

# Take every tripped channel and empty the hash in one step, so a trip
# written between a read and a delete is never lost.
TAKE_ALL = """
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""


def apply_trips() -> list[int]:
    """The ids of the channels taken out of rotation."""
    client = redis_url.client(settings.REDIS_URL)
    try:
        flat = client.eval(TAKE_ALL, 1, TRIPPED_KEY)
    finally:
        client.close()
    disabled = []
    for raw_id, raw in zip(flat[::2], flat[1::2], strict=True):
        reason, _bar, detail = raw.decode("utf-8", "replace").partition("|")
        channel_id = int(raw_id)
        if state.auto_disable(channel_id=channel_id, reason=reason, detail=detail):
            log.warning("channel %s taken out of rotation: %s %s", channel_id, reason, detail)
            disabled.append(channel_id)
    return disabled


def _probe(channel: Channel) -> bool:
    result = probe(channel=channel)
    back = state.record_probe(channel=channel, result=result)
    if back:
        log.warning("channel %s back in rotation: its probe passed", channel.name)
    return back


def _within_budget(channels) -> list[int]:
    started = time.monotonic()
    back = []
    for channel in channels:
        if time.monotonic() - started > PROBE_BUDGET_S - PROBE_TIMEOUT_S:
            log.warning("channel probes: out of time, the rest wait for the next run")
            break
        if _probe(channel):
            back.append(channel.pk)
    return back


def probe_due() -> list[int]:
    """Probe the auto-disabled channels that are due, longest waiting first;
    the ids put back."""
    due = (
        Channel.objects.auto_disabled()
        .filter(next_probe_at__lte=timezone.now())
        .order_by("next_probe_at")
    )
    return _within_budget(due)


def test_all(*, only_auto_disabled: bool = False) -> list[int]:
    """Probe every channel (or only those the relay took out), those not
    tested longest first; the ids of auto-disabled ones put back. A run out
    of time leaves the rest for the operator's next press."""
    channels = Channel.objects.all()
    if only_auto_disabled:
        channels = channels.auto_disabled()
    never_first = F("last_probe_at").asc(nulls_first=True)
    return _within_budget(channels.order_by(never_first, "pk"))
