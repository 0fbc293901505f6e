"""RelayConfig.ready() connects the catalog's invalidation in every process,
so a change made where relay.operations is never imported (a Celery worker
auto-disabling a channel) still empties every web process's caches at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.conf import settings

from billing import redis_url
from relay.catalog import invalidation
from relay.models import Channel
from tests.helpers import ROOT, make_channel

# What a Celery worker does when channel health trips (relay/health/state.py),
# in a process of its own that checks it never loads the operator's write path.
AUTO_DISABLE = """
import sys
import django
django.setup()
from relay.health import state
assert "relay.operations" not in sys.modules, "the worker path imports relay.operations"
assert state.auto_disable(channel_id={channel_id}, reason="failures", detail="probe failed")
assert "relay.operations" not in sys.modules, "the worker path imports relay.operations"
"""


def published(pubsub, *, timeout_s: float) -> list[bytes]:
    deadline = time.monotonic() + timeout_s
    messages = []
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            messages.append(message["data"])
    return messages


@pytest.mark.django_db(transaction=True)
def test_a_channel_auto_disabled_outside_the_operations_path_is_announced(server_env, group):
    channel = make_channel(group, "https://upstream.example/v1")
    pubsub = redis_url.client(settings.REDIS_URL).pubsub()
    pubsub.subscribe(invalidation.CHANNEL)
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    try:
        done = subprocess.run(
            [sys.executable, "-c", AUTO_DISABLE.format(channel_id=channel.pk)],
            cwd=ROOT,
            env=server_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert published(pubsub, timeout_s=2) == [b"1"]
    finally:
        pubsub.close()
    assert not Channel.objects.get(pk=channel.pk).enabled


@pytest.mark.django_db
def test_connecting_twice_still_announces_a_change_once(group, django_capture_on_commit_callbacks):
    invalidation.connect()  # ready() ran it already; this must add nothing
    with django_capture_on_commit_callbacks() as callbacks:
        Channel.objects.create(name="once", base_url="https://upstream.example/v1")

    assert callbacks.count(invalidation.publish) == 1
