"""What gunicorn's configuration reads from the environment, read before
gunicorn is imported (``relay/server/__main__.py``) and again by the
configuration itself (``relay/server/gunicorn_conf.py``), through the same
typed readers, so a bad value is one line naming the variable and what it
accepts."""

from __future__ import annotations

from typing import NamedTuple

from django.core.exceptions import ImproperlyConfigured

from relay.lib.env import env_int, web_concurrency


class ServerEnvironment(NamedTuple):
    workers: int
    timeout_s: int


def read() -> ServerEnvironment:
    """Read every variable gunicorn's configuration takes; exit with one
    line (no traceback) on the first bad one."""
    try:
        return ServerEnvironment(
            # Read as the settings read it, so the Redis-down share of each
            # limit (RELAY_FALLBACK_PROCESSES) is 1/workers of it.
            workers=web_concurrency(),
            # Long enough for the slowest upstream read plus failover attempts.
            timeout_s=env_int("GUNICORN_TIMEOUT", 180, minimum=1),
        )
    except ImproperlyConfigured as exc:
        raise SystemExit(f"gunicorn: {exc}") from None
