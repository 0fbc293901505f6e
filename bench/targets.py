"""Starting what the benchmark sends load to (bench/meter.py measures it).

Every process is started through ``relay.devtools.devstack.spawn`` (it dies with the
runner, even on kill -9) and stopped with its whole tree when the runner
leaves its ``Children``. Every address is 127.0.0.1 and every port a free one,
so a benchmark can run beside the test suite.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from relay.devtools.devstack import (
    WEB_COMMAND,
    WORKER_BEAT,
    WORKER_COMMAND,
    WORKER_CONCURRENCY,
    free_port,
    manage,
    services,
    spawn,
    wait_ready,
)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MODEL = "text-embedding-3-small"
LITELLM = ROOT / ".bench-peers" / "venv" / "bin" / "litellm"
LITELLM_MASTER_KEY = "sk-bench-master"


# --- processes -------------------------------------------------------------------


class Children:
    """The processes this runner started, each with a log file; ``close()``
    stops each one and everything it started, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], *, env: dict, cwd: Path = ROOT):
        with open(self.log_dir / f"{name}.log", "ab") as log:
            process = spawn(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.started.append((name, process))
        return process

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited ({process.returncode}); its log ends:\n{self.log_tail(name)}"
                )

    def stop(self, process: subprocess.Popen) -> None:
        stop_tree(process)
        self.started = [(name, p) for name, p in self.started if p is not process]

    def close(self) -> None:
        while self.started:
            _name, process = self.started.pop()
            stop_tree(process)


def stop_tree(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM the process, then whatever it started that outlived it."""
    if process.returncode is not None:
        return  # already stopped and reaped: its pid may name another process now
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    _gone, alive = psutil.wait_procs(descendants, timeout=5)
    for leftover in alive:  # psutil checks the pid still names the same process
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.terminate()
    _gone, alive = psutil.wait_procs(alive, timeout=3)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()


def post(url: str, body: bytes, authorization: str, timeout_s: float = 30) -> tuple[int, bytes]:
    """One request over plain http.client (no proxy settings are honoured)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {url}")
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=timeout_s)
    try:
        connection.request(
            "POST",
            parts.path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": authorization,
            },
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_answers(
    url: str, body: bytes, authorization: str, *, timeout_s: float, children: Children
) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        children.check_alive()
        try:
            status, answer = post(url, body, authorization, timeout_s=10)
            if status == 200:
                return
            last = f"{status}: {answer[:300]!r}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s (last: {last})")


# --- targets -----------------------------------------------------------------------


@dataclass
class Route:
    """Where a target takes one phase's load (one upstream latency)."""

    url: str
    authorization: str
    model: str = MODEL


@dataclass
class Target:
    name: str
    routes: dict[str, Route]  # by upstream label
    # Process groups whose CPU and memory count as this target's.
    groups: tuple[str, ...] = ()


def start_fake_upstream(children: Children, *, latency_ms: int, processes: int = 2) -> str:
    """A fake upstream; returns its base URL (ending in /v1)."""
    port = free_port()
    children.start(
        f"fake-upstream-{latency_ms}ms",
        [
            PYTHON,
            "-m",
            "relay.devtools.fake_upstream",
            "--port",
            str(port),
            "--processes",
            str(processes),
            "--latency-ms",
            str(latency_ms),
        ],
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}/v1"
    wait_answers(
        f"{base}/embeddings",
        b'{"model":"%s","input":"ready?"}' % MODEL.encode(),
        "Bearer sk-direct",
        timeout_s=30,
        children=children,
    )
    return base


@dataclass
class Relay:
    """The relay's whole pipeline: gunicorn (uvicorn workers) and a Celery
    worker with beat in a thread of it, as ``python3 dev.py run`` starts them,
    on PostgreSQL and Redis started for this run."""

    url: str
    keys: dict[str, str]
    web_pid: int
    worker_pid: int
    dep_pids: list[int]
    database_url: str
    redis_url: str
    cache_redis_url: str
    streams: list[str]
    _db: object = field(default=None, repr=False)

    def usage_records(self) -> int:
        """Usage records the workers wrote for the benchmark tenant."""
        import psycopg

        if self._db is None:
            self._db = psycopg.connect(self.database_url, autocommit=True)
        row = self._db.execute(
            "SELECT count(*) FROM billing_usagerecord r JOIN accounts_tenant t "
            "ON t.id = r.tenant_id WHERE t.slug = 'bench'"
        ).fetchone()
        return int(row[0])

    def queued_events(self) -> int:
        from billing import redis_url

        with redis_url.client(self.redis_url) as client:
            return sum(int(client.xlen(stream)) for stream in self.streams)

    def wait_drained(self, timeout_s: float = 120) -> int:
        """Wait until the usage stream is empty (every event written and
        acknowledged by the worker) twice in a row; the record count."""
        deadline = time.monotonic() + timeout_s
        empty_polls = 0
        while time.monotonic() < deadline:
            empty_polls = empty_polls + 1 if self.queued_events() == 0 else 0
            if empty_polls >= 2:
                return self.usage_records()
            time.sleep(0.5)
        raise RuntimeError(f"the usage stream did not drain within {timeout_s:.0f} s")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


@contextlib.contextmanager
def relay(
    children: Children,
    state_dir: Path,
    upstreams: dict[str, str],
    *,
    batches: str | None = None,
    topology: str = "",
    name: str = "relay",
) -> Iterator[Relay]:
    """The relay and its own stack; ``topology`` "cluster" or "sentinel" puts
    its Redis state there (relay/devtools/redis_topologies.py)."""
    with services(state_dir, redis_topology=topology) as env:
        yield from _relay(children, state_dir, upstreams, env, batches=batches, name=name)


def _relay(
    children: Children,
    state_dir: Path,
    upstreams: dict[str, str],
    env: dict,
    *,
    batches: str | None,
    name: str,
) -> Iterator[Relay]:
    env = {**env, "WEB_CONCURRENCY": "2"}
    manage(env, "migrate", "--no-input", "-v", "0")
    seeded = subprocess.run(
        [
            PYTHON,
            "manage.py",
            "seed_bench",
            *(
                arg
                for label, base in upstreams.items()
                for arg in ("--upstream", f"{label}={base}")
            ),
            *(("--batches", batches) if batches else ()),
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    keys = {
        parts[1]: parts[2]
        for parts in (line.split() for line in seeded.stdout.splitlines())
        if len(parts) == 3 and parts[0] == "key"
    }
    port = free_port()
    web = children.start(
        f"{name}-web",
        [PYTHON, "-m", *WEB_COMMAND, "--bind", f"127.0.0.1:{port}"],
        env=env,
    )
    worker = children.start(
        f"{name}-worker",
        [
            PYTHON,
            "-m",
            *WORKER_COMMAND,
            WORKER_BEAT,
            "--loglevel",
            "WARNING",
            "--concurrency",
            WORKER_CONCURRENCY,
            "--schedule",
            str(state_dir / "celerybeat-schedule"),
        ],
        env=env,
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    found = Relay(
        url=f"http://127.0.0.1:{port}/v1/embeddings",
        keys=keys,
        web_pid=web.pid,
        worker_pid=worker.pid,
        dep_pids=_embedded_servers(state_dir, env["REDIS_URL"]),
        database_url=env["DATABASE_URL"],
        redis_url=env["REDIS_URL"],
        cache_redis_url=env["CACHE_REDIS_URL"],
        streams=[
            f"{env.get('USAGE_STREAM', 'usage:events')}:{{s{n}}}"
            for n in range(int(env.get("USAGE_STREAM_SHARDS", "16")))
        ],
    )
    try:
        yield found
    finally:
        found.close()
        # Stop the relay's processes before services() stops their servers.
        for process in (worker, web):
            stop_tree(process)


def _embedded_servers(state_dir: Path, redis_url: str) -> list[int]:
    """PostgreSQL's postmaster and Redis, when this run started them."""
    pids = []
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((state_dir / "postgres" / "postmaster.pid").read_text().split()[0]))
    # The main Redis by its address (it rewrites its command line to
    # "redis-server HOST:PORT"); a cluster's or Sentinel setup's every node by
    # its working directory (Redis runs in its --dir): replicas copy each write.
    from billing import redis_url as urls

    topology_dir = state_dir / f"redis-{urls.parse(redis_url).kind}"
    address = urllib.parse.urlsplit(redis_url).netloc
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "redis" in process.name() and (
                address in " ".join(process.cmdline())
                or Path(process.cwd()).is_relative_to(topology_dir)
            ):
                pids.append(process.pid)
    return sorted(set(pids))


def litellm_missing() -> str | None:
    """Why LiteLLM cannot be benchmarked, or None."""
    if not LITELLM.exists():
        return f"{LITELLM.relative_to(ROOT)} is absent (run `make bench-peers` to install it)"
    return None


class LiteLLM:
    """LiteLLM's proxy, master-key mode, 2 workers, no database: one model
    name per upstream, all mapped to ``openai/text-embedding-3-small``.

    A client that gives up does not stop LiteLLM working on its request, so
    after a heavy run it can stay busy for minutes; ``restart()`` ends that."""

    def __init__(self, children: Children, workdir: Path, upstreams: dict[str, str]) -> None:
        import yaml

        self.children = children
        self.workdir = workdir
        self.names = {
            label: MODEL if index == 0 else f"{MODEL}-{label}"
            for index, label in enumerate(upstreams)
        }
        config = {
            "model_list": [
                {
                    "model_name": self.names[label],
                    "litellm_params": {
                        "model": f"openai/{MODEL}",
                        "api_base": base,
                        "api_key": "sk-fake-upstream-credential",
                    },
                }
                for label, base in upstreams.items()
            ],
            "litellm_settings": {"telemetry": False},
            "general_settings": {"master_key": LITELLM_MASTER_KEY},
        }
        self.config = workdir / "litellm.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/embeddings"
        self.authorization = f"Bearer {LITELLM_MASTER_KEY}"
        self.target = Target(
            name="litellm",
            routes={
                label: Route(self.url, self.authorization, name)
                for label, name in self.names.items()
            },
            groups=("litellm",),
        )
        self.process: subprocess.Popen | None = None
        self.start()

    def _env(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DATABASE_URL", "REDIS_", "DJANGO_", "VIRTUAL_ENV"))
        }
        env.update(
            {
                "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
                "LITELLM_TELEMETRY": "False",
                "LITELLM_LOG": "ERROR",
                # The model price list, otherwise fetched from GitHub at start.
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "HF_HUB_OFFLINE": "1",
                # Anything that tries to leave the machine goes to a closed local
                # port and fails at once; the fake upstream is on 127.0.0.1.
                **{
                    name: "http://127.0.0.1:9"
                    for name in (
                        "HTTP_PROXY",
                        "HTTPS_PROXY",
                        "http_proxy",
                        "https_proxy",
                        "ALL_PROXY",
                    )
                },
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        return env

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = self.children.start(
            "litellm",
            [
                str(LITELLM),
                "--config",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--num_workers",
                "2",
            ],
            env=self._env(),
            cwd=self.workdir,
        )
        for name in self.names.values():
            body = b'{"model":"%s","input":"ready?"}' % name.encode()
            wait_answers(self.url, body, self.authorization, timeout_s=180, children=self.children)

    def restart(self) -> None:
        if self.process is not None:
            self.children.stop(self.process)
        self.start()
