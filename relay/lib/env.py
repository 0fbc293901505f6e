"""Typed readers for settings that come from the environment.

Every setting is read through one of these, so a bad value fails loudly at
start-up (``ImproperlyConfigured``) instead of surfacing as a confusing error
on the first request. ``NAME_FILE`` is honoured for every key, so secrets can
come from mounted files (Docker/Kubernetes secrets) rather than the
environment.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return os.environ.get(name)


def env_str(name: str, default: str | None = None) -> str:
    value = _raw(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"Set the {name} environment variable.")
        return default
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    # The message names what is accepted, whichever way the value is wrong.
    accepted = "a whole number" + ("" if minimum is None else f" of at least {minimum}")
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {accepted}, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be {accepted}, got {number}.")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from exc
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}.")


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


# gunicorn's workers when WEB_CONCURRENCY is unset: one per core the process
# may run on, at most 4 (past that, run more machines: docs/deploy.md).
MAX_DEFAULT_WEB_CONCURRENCY = 4


def web_concurrency() -> int:
    """How many web processes serve the relay on this machine: WEB_CONCURRENCY,
    else one per usable core up to MAX_DEFAULT_WEB_CONCURRENCY. The one reading
    of it: gunicorn's worker count (relay/server/gunicorn_conf.py) and the
    share of every limit each process enforces while Redis is down
    (RELAY_FALLBACK_PROCESSES) come from here, so they cannot disagree."""
    try:
        cores = len(os.sched_getaffinity(0))  # a container's cpuset, not the host's cores
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return env_int("WEB_CONCURRENCY", min(cores, MAX_DEFAULT_WEB_CONCURRENCY), minimum=1)
