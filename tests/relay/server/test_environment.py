"""Starting the web server with a bad value in a variable gunicorn's config
reads is one line naming the variable and what it accepts, exit 1, and no
traceback: the real server command (dev.py's, compose's), in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from relay.devtools.devstack import WEB_COMMAND
from tests.helpers import ROOT, free_port, web_command


def start_server(**env: str) -> subprocess.CompletedProcess:
    """The server command with ``env``; bounded, in case it starts after all."""
    return subprocess.run(
        web_command(free_port()),
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEB_CONCURRENCY", "abc"),
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "-1"),
        ("WEB_CONCURRENCY", "2.5"),
        ("GUNICORN_TIMEOUT", "abc"),
        ("GUNICORN_TIMEOUT", "0"),
        ("GUNICORN_TIMEOUT", "-1"),
    ],
)
def test_a_bad_value_stops_the_server_with_one_line_naming_the_variable(variable, value):
    done = start_server(**{variable: value})

    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    shown = value if value.startswith("-") or value == "0" else repr(value)
    assert done.stderr.strip() == (
        f"gunicorn: {variable} must be a whole number of at least 1, got {shown}."
    )


def test_good_values_pass_the_check_and_reach_gunicorn():
    # gunicorn's own check of its configuration: it loads the relay's config
    # with these values, and exits 0 without serving.
    done = subprocess.run(
        [sys.executable, "-m", *WEB_COMMAND, "--check-config"],
        cwd=ROOT,
        env={**os.environ, "WEB_CONCURRENCY": "3", "GUNICORN_TIMEOUT": "90"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
