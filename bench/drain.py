"""The usage drain's insert rate: ``python3 dev.py bench-drain``.

Fills the usage streams with events of BENCH_DRAIN_TENANTS tenants (one key
each), then lets 1, 2 and 4 drain processes (billing.tasks.drain_usage_events
in a loop, as Celery runs it) write them, and prints records per second in
all and per process, and the CPU time per record of the drain processes and
of PostgreSQL and Redis (the figures a busy, shared machine disturbs least).
Runs on the dev stack's embedded PostgreSQL and Redis (REDIS_TOPOLOGY picks a
cluster or Sentinel). docs/scaling.md has the figures.

    BENCH_DRAIN_EVENTS    events per process (default 20000)
    BENCH_DRAIN_TENANTS   tenants the events belong to (default 64)
    BENCH_DRAIN_WORKERS   comma-separated process counts (default 1,2,4)
    BENCH_DRAIN_PROFILE   set: each process prints cProfile's top functions
                          (by cumulative and by own time) to stderr
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
GO = "bench:drain:go"
# The PostgreSQL and Redis servers' pids, handed to the inside process.
SERVERS = "BENCH_DRAIN_SERVER_PIDS"
PROFILE = bool(os.environ.get("BENCH_DRAIN_PROFILE"))

# Each drain process: set up Django, wait for the go, drain until the
# streams are empty, say how many it wrote.
CHILD = """
import time, django
django.setup()
from billing import redis_url
from billing.tasks import drain_usage_events
from django.conf import settings
from relay.celery import tune_collector
tune_collector()  # as the worker does at start
conn = redis_url.client(settings.REDIS_URL)
while not conn.get({go!r}):
    time.sleep(0.005)
profile = {profile!r}
if profile:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
written = 0
cpu_s = time.process_time()
while True:
    n = drain_usage_events()
    written += n
    if n == 0:
        break
cpu_s = time.process_time() - cpu_s
if profile:
    import pstats, sys
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
print(written, cpu_s)
"""


def inside() -> None:
    """In a process with the stack's environment: seed, fill, time."""
    import django

    django.setup()
    import uuid

    from django.conf import settings

    from accounts.models import ApiKey, Group, Tenant
    from billing import ledger, redis_url, streams
    from billing.models import UsageRecord
    from billing.usage_events import FIELD, FIELD_CHARGE, UsageEvent

    per_worker = int(os.environ.get("BENCH_DRAIN_EVENTS", "20000"))
    tenant_count = int(os.environ.get("BENCH_DRAIN_TENANTS", "64"))
    worker_counts = [int(n) for n in os.environ.get("BENCH_DRAIN_WORKERS", "1,2,4").split(",")]
    conn = redis_url.client(settings.REDIS_URL)
    servers = [int(pid) for pid in os.environ.get(SERVERS, "").split(",") if pid]
    run = uuid.uuid4().hex[:6]
    group = Group.objects.create(name=f"bench-drain-{run}")
    keys = []
    for n in range(tenant_count):
        tenant = Tenant.objects.create(slug=f"drain-{run}-{n}", name=f"drain {n}")
        ledger.top_up(tenant=tenant, amount_nanos=10**15, reason="bench")
        keys.append(ApiKey.issue(tenant=tenant, group=group, name="bench")[0])
    print(
        f"drain rate: {tenant_count} tenants, {per_worker} events per process, "
        f"batches of {settings.USAGE_BATCH_SIZE}, {settings.USAGE_STREAM_SHARDS} streams, "
        f"Redis {redis_url.parse(settings.REDIS_URL).kind}",
        flush=True,
    )
    for workers in worker_counts:
        total = per_worker * workers
        conn.delete(GO)
        now_ms = int(time.time() * 1000)
        pipe = conn.pipeline(transaction=False)
        for n in range(total):
            key = keys[n % len(keys)]
            event = UsageEvent(
                request_id=f"req_drain_{run}_{workers}_{n}",
                tenant_id=key.tenant_id,
                api_key_id=key.pk,
                group_id=group.pk,
                channel_id=None,
                model="text-embedding-3-small",
                served_model="text-embedding-3-small",
                input_count=1,
                counted_tokens=9,
                tokens=9,
                token_source="upstream",  # noqa: S106 (not a secret)
                price_per_mtok_nanos=20_000_000,
                latency_ms=12,
                status="served",
                end_user="",
                created_ms=now_ms,
            )
            pipe.xadd(streams.stream_for(key.tenant_id), {FIELD: event.encode(), FIELD_CHARGE: 180})
            if n % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        before = UsageRecord.objects.count()
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD.format(go=GO, profile=PROFILE)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        time.sleep(3)  # every child has set Django up and waits for the go
        started = time.perf_counter()
        servers_before = servers_cpu_s(servers)
        conn.set(GO, 1)
        outputs = [child.communicate()[0].split() for child in children]
        elapsed = time.perf_counter() - started
        servers_us = (servers_cpu_s(servers) - servers_before) * 1e6
        written = UsageRecord.objects.count() - before
        rate = written / elapsed
        cpu_us = sum(float(cpu_s) for _n, cpu_s in outputs) / written * 1e6
        print(
            f"  {workers} process(es): {written} records in {elapsed:.2f} s = "
            f"{rate:,.0f} records/s, {rate / workers:,.0f} per process "
            f"(each wrote {', '.join(n for n, _cpu_s in outputs)}); "
            f"drain CPU {cpu_us:.0f} µs a record, PostgreSQL + Redis {servers_us / written:.0f}",
            flush=True,
        )


def main() -> int:
    if "--inside" in sys.argv:
        inside()
        return 0
    sys.path.insert(0, str(ROOT))
    from relay.devtools import devstack

    state_dir = Path(tempfile.mkdtemp(prefix="relay-bench-drain-"))
    with devstack.services(state_dir) as env:
        devstack.manage(env, "migrate", "--no-input", "-v", "0")
        from bench.targets import _embedded_servers

        servers = _embedded_servers(state_dir, env["REDIS_URL"])
        env = {**env, SERVERS: ",".join(str(pid) for pid in servers)}
        return subprocess.run(
            [sys.executable, "-m", "bench.drain", "--inside"], env=env, cwd=ROOT
        ).returncode


def servers_cpu_s(pids: list[int]) -> float:
    """CPU seconds PostgreSQL and Redis have used so far: each server, its
    live children (PostgreSQL's backends) and the children it has reaped
    (the backends of drain processes that have exited)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            server = psutil.Process(pid)
            times = server.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in server.children():
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
    return total


if __name__ == "__main__":
    sys.exit(main())
