"""The typed readers of the environment, and the one default for the number
of web processes that gunicorn and the Redis-down limits share."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from relay.lib.env import MAX_DEFAULT_WEB_CONCURRENCY, env_int, web_concurrency
from tests.helpers import ROOT


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def test_web_concurrency_defaults_to_one_process_per_usable_core_up_to_four(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert web_concurrency() == min(usable_cores(), MAX_DEFAULT_WEB_CONCURRENCY)


def test_web_concurrency_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "7")
    assert web_concurrency() == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two", "WEB_CONCURRENCY must be a whole number of at least 1, got 'two'."),
        ("0", "WEB_CONCURRENCY must be a whole number of at least 1, got 0."),
    ],
)
def test_a_bad_web_concurrency_fails_naming_the_variable(monkeypatch, value, message):
    monkeypatch.setenv("WEB_CONCURRENCY", value)
    with pytest.raises(ImproperlyConfigured) as raised:
        web_concurrency()
    assert str(raised.value) == message


def test_an_integer_setting_reads_its_file_variant(monkeypatch, tmp_path):
    path = tmp_path / "value"
    path.write_text("12\n")
    monkeypatch.setenv("SOME_NUMBER_FILE", str(path))
    assert env_int("SOME_NUMBER", 3) == 12


SHARED = (
    "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'relay.settings'); "
    "django.setup(); from django.conf import settings; "
    "import relay.server.gunicorn_conf as conf; "
    "print(conf.workers, settings.WEB_CONCURRENCY, settings.RELAY_FALLBACK_PROCESSES)"
)


def read_in_a_fresh_process(**env: str) -> list[int]:
    environ = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    done = subprocess.run(
        [sys.executable, "-c", SHARED],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


def test_gunicorn_and_the_redis_down_limits_share_one_default():
    expected = min(usable_cores(), MAX_DEFAULT_WEB_CONCURRENCY)
    # On a 4-core host with the variable unset, gunicorn ran min(cpu, 4) workers
    # while each enforced 1/2 of every limit with Redis down: twice the limit.
    assert read_in_a_fresh_process() == [expected, expected, expected]


def test_gunicorn_and_the_redis_down_limits_share_a_set_value():
    assert read_in_a_fresh_process(WEB_CONCURRENCY="3") == [3, 3, 3]


def test_gunicorn_refuses_a_web_concurrency_below_one_with_one_clear_line():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--check-config",
            "-c",
            "python:relay.server.gunicorn_conf",
            "relay.asgi:application",
        ],
        cwd=ROOT,
        env={**os.environ, "WEB_CONCURRENCY": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "gunicorn: WEB_CONCURRENCY must be a whole number of at least 1, got 0."
    )
