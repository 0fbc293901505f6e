"""The embeddings benchmark: ``make bench`` (``python3 dev.py bench``).

Closed-loop load from wrk against three targets in front of the same fake
upstream (relay/devtools/fake_upstream/, 2 processes, a fixed latency):

    direct    the fake upstream itself (what no proxy at all would give)
    relay     this project through its whole pipeline: a real key, group and
              limits (set high), a balance, holds and settlement in Redis, and
              usage events written to PostgreSQL by a running Celery worker
    litellm   LiteLLM's proxy, master-key mode, 2 workers, no database, when
              `make bench-peers` has installed it into .bench-peers/venv

Each cell gets a warm-up run (not counted) and a measured run. docs/benchmarks.md
explains what is measured and how. Environment:

    BENCH_DURATION_S   seconds of each measured run (default 8; 3 with BENCH_QUICK)
    BENCH_WARMUP_S     seconds of each warm-up run (default 2)
    BENCH_QUICK=1      a smoke run: 20 ms upstream, c in {16, 64}
    BENCH_TARGETS      comma-separated subset of
                       direct,relay,relay-cluster,relay-sentinel,litellm
                       (relay-cluster, relay-sentinel: the relay on a Redis
                       Cluster, behind Sentinel; the c=64 one-string cell only)
    BENCH_BODIES       comma-separated subset of one,batch16,batch16-base64
    BENCH_CONCURRENCY  comma-separated subset of the concurrencies
    BENCH_BATCHES=0    leave out the batch engine's rows (bench/batches.py)
    BENCH_LATENCY_ROUNDS  rounds of the c=16 one-string cell, whose p50 target is
                       judged on the median of the rounds (default 3)

Prints the table, the ratios and PASS/MISS per target; writes the raw results
to bench/results/latest.json.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import orjson

from bench import batches, redis_calls, report, wrk
from bench.cells import (
    LITELLM_NOT_RUN,
    UPSTREAMS,
    body_for,
    check_answer,
    matrix,
)
from bench.meter import Meter, quiet
from bench.targets import (
    Children,
    LiteLLM,
    Route,
    Target,
    litellm_missing,
    post,
    relay,
    start_fake_upstream,
)
from relay.devtools.prerequisites import ensure_debian_package

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"

# How long a target may take to finish what a run left in flight before the
# next run starts (LiteLLM is restarted if it takes longer).
SETTLE_MAX_S = 45


def raise_open_files_limit() -> int:
    # 1,000 connections on the client side and as many on the server side,
    # plus the upstream pool; children inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def litellm_version() -> str | None:
    found = sorted((ROOT / ".bench-peers" / "venv").glob("lib/python*/site-packages/litellm-*"))
    return found[0].name.removeprefix("litellm-").removesuffix(".dist-info") if found else None


def settle(target: Target, groups: dict[str, list[int]], peer: LiteLLM | None) -> dict:
    """Let the target finish what the last run left in flight; restart LiteLLM
    when it cannot within SETTLE_MAX_S."""
    pids = [pid for group in target.groups for pid in groups.get(group, [])]
    waited_s, reached = quiet(pids, max_wait_s=SETTLE_MAX_S)
    note = {"settle_s": round(waited_s, 1)}
    if not reached and peer is not None and target.name == "litellm":
        peer.restart()
        groups["litellm"] = [peer.pid]
        note["restarted"] = True
    return note


# The relay's PostgreSQL and Redis servers, per target.
TOPOLOGIES = ("cluster", "sentinel")
DEPS = {"relay": "deps"} | {f"relay-{t}": f"deps-{t}" for t in TOPOLOGIES}
# The cell run against the cluster and Sentinel too (same run, beside the
# standalone row).
CLUSTER_CELL = ("20ms", "one", 64, 1)


def run_cell(
    target: Target,
    upstream: str,
    body_name: str,
    connections: int,
    round_: int,
    *,
    groups: dict[str, list[int]],
    memory_of: dict[str, tuple[str, ...]],
    workdir: Path,
    warmup_s: int,
    duration_s: int,
    relay_handle,
    peer: LiteLLM | None,
) -> dict:
    route = target.routes[upstream]
    script = wrk.render_script(
        workdir, body=body_for(body_name, route), authorization=route.authorization
    )
    result: dict = {
        "target": target.name,
        "upstream": upstream,
        "body": body_name,
        "connections": connections,
        "round": round_,
    }
    if warmup_s:
        wrk.run(route.url, script, connections=connections, duration_s=warmup_s)
        result["after_warmup"] = settle(target, groups, peer)
    records_before = None
    if relay_handle is not None:
        # The warm-up's events are written before the measured window opens.
        records_before = relay_handle.wait_drained()
        calls_before = redis_calls.commands(relay_handle.redis_url)
    meter = Meter(groups, memory_of=memory_of.get(target.name, ()))
    meter.start()
    measured = wrk.run(route.url, script, connections=connections, duration_s=duration_s)
    if relay_handle is not None:
        # Inside the window: the worker's CPU for writing these records counts.
        result["usage_records"] = relay_handle.wait_drained()
        result["usage_records_added"] = result["usage_records"] - records_before
        if measured.requests:
            result |= redis_calls.per_request(
                redis_calls.commands(relay_handle.redis_url) - calls_before, measured.requests
            )
    figures = meter.stop()
    result.update(measured.as_dict())
    result["meter"] = figures
    own = [group for group in target.groups if group in figures["cpu_s"]]
    if measured.requests and own:
        result["cpu_s"] = round(sum(figures["cpu_s"][g] for g in own), 3)
        result["cpu_ms_per_request"] = round(1000 * result["cpu_s"] / measured.requests, 3)
        for group in own:
            result[f"cpu_ms_{group}"] = round(1000 * figures["cpu_s"][group] / measured.requests, 3)
    if memory_of.get(target.name):
        result["peak_rss_mb"] = figures["peak_rss_total_mb"]
        result["peak_pss_mb"] = figures["peak_pss_total_mb"]
    deps = DEPS.get(target.name)
    if deps and measured.requests and deps in figures["cpu_s"]:
        # PostgreSQL and Redis: not the relay's processes, but its cost all the same.
        result["cpu_ms_deps"] = round(1000 * figures["cpu_s"][deps] / measured.requests, 3)
    result["after_run"] = settle(target, groups, peer)
    return result


def keep_logs(log_dir: Path, lines: int = 200) -> None:
    """Each process's warnings and errors, and the end of its log, into
    bench/results/logs/ (the full logs hold a line per request)."""
    kept = RESULTS.parent / "logs"
    kept.mkdir(parents=True, exist_ok=True)
    for log in sorted(log_dir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        noteworthy = [
            line for line in text if any(word in line for word in ("WARNING", "ERROR", "Traceback"))
        ]
        (kept / log.name).write_text(
            "\n".join(
                [
                    f"# {len(noteworthy)} warning/error lines (first {lines}):",
                    *noteworthy[:lines],
                    f"# last {lines} lines of {len(text)}:",
                    *text[-lines:],
                    "",
                ]
            )
        )


def describe(result: dict) -> str:
    line = (
        f"{result['target']:<8} {result['upstream']:>6} {report.body_label(result):<15} "
        f"c={result['connections']:<5} {result['rps']:>8.1f} rps  p50 {result['p50_ms']:.2f} "
        f"p99 {result['p99_ms']:.1f} ms  errors {result['error_count']}"
    )
    if "cpu_ms_per_request" in result:
        line += f"  cpu {result['cpu_ms_per_request']:.2f} ms/req"
    if "cpu_ms_deps" in result:
        line += f" (+{result['cpu_ms_deps']:.2f} pg/redis)"
    if "peak_rss_mb" in result:
        line += f"  rss {result['peak_rss_mb']:.0f} MB (pss {result['peak_pss_mb']:.0f})"
    if "redis_scripts_per_request" in result:
        line += (
            f"  redis {result['redis_scripts_per_request']:.2f} scripts/req "
            f"({result['redis_commands_per_request']:.2f} commands run, scripts' own included)"
        )
    if "usage_records" in result:
        line += f"  usage records {result['usage_records']} (+{result['usage_records_added']})"
    if any(result.get(step, {}).get("restarted") for step in ("after_warmup", "after_run")):
        line += "  (restarted: still busy with abandoned requests)"
    return line


def main() -> int:
    if not wrk.executable():
        ensure_debian_package("wrk", "wrk", "the benchmark")
    if not wrk.executable():
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    duration_s = int(os.environ.get("BENCH_DURATION_S", "3" if quick else "8"))
    warmup_s = int(os.environ.get("BENCH_WARMUP_S", "2"))
    wanted = set(
        os.environ.get("BENCH_TARGETS", "direct,relay,relay-cluster,relay-sentinel,litellm").split(
            ","
        )
    )
    open_files = raise_open_files_limit()
    cells = matrix(quick)
    started = datetime.datetime.now(datetime.UTC)
    print(
        f"bench: {len(cells)} cells x up to 3 targets, warm-up {warmup_s} s, measured "
        f"{duration_s} s each; open files {open_files}",
        flush=True,
    )

    litellm_skipped = None if "litellm" in wanted else "not in BENCH_TARGETS"
    litellm_skipped = litellm_skipped or litellm_missing()
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    # Registered before anything else: atexit runs last-in first-out, and
    # pgserver's own exit handler writes into this directory.
    atexit.register(shutil.rmtree, workdir, True)
    state_dir = workdir / "state"
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True)
    results: list[dict] = []
    batch_rows: list[dict] = []
    children = Children(log_dir)
    failed = False
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(children.close)
            phases = sorted({cell[0] for cell in cells}, key=UPSTREAMS.get)
            bases = {
                label: start_fake_upstream(children, latency_ms=UPSTREAMS[label])
                for label in phases
            }
            print("fake upstreams: " + ", ".join(f"{k} {v}" for k, v in bases.items()), flush=True)
            targets: list[Target] = []
            groups: dict[str, list[int]] = {
                "upstream": [process.pid for _name, process in children.started],
            }
            memory_of: dict[str, tuple[str, ...]] = {}
            if "direct" in wanted:
                targets.append(
                    Target(
                        name="direct",
                        groups=("upstream",),
                        routes={
                            label: Route(f"{base}/embeddings", "Bearer sk-direct")
                            for label, base in bases.items()
                        },
                    )
                )
            relay_handle = None
            if "relay" in wanted:
                # The batch rows' channels: on the 20 ms fake.
                root = bases["20ms"].removesuffix("/v1") if "20ms" in bases else None
                relay_handle = stack.enter_context(relay(children, state_dir, bases, batches=root))
                groups |= {
                    "web": [relay_handle.web_pid],
                    "worker": [relay_handle.worker_pid],
                    "deps": relay_handle.dep_pids,
                }
                memory_of["relay"] = ("web", "worker")
                targets.append(
                    Target(
                        name="relay",
                        groups=("web", "worker"),
                        routes={
                            label: Route(relay_handle.url, f"Bearer {relay_handle.keys[label]}")
                            for label in bases
                        },
                    )
                )
                print(
                    f"relay: {relay_handle.url} (usage records so far: "
                    f"{relay_handle.usage_records()})",
                    flush=True,
                )
            handles = {"relay": relay_handle}
            for topology in TOPOLOGIES:
                name = f"relay-{topology}"
                if name not in wanted:
                    continue
                # The same relay with its Redis state on a Redis Cluster (three
                # primaries, three replicas, settles waiting for a replica) or
                # behind Sentinel (a primary, a replica, three sentinels).
                handle = handles[name] = stack.enter_context(
                    relay(
                        children, workdir / f"state-{topology}", bases, topology=topology, name=name
                    )
                )
                groups |= {
                    f"web-{topology}": [handle.web_pid],
                    f"worker-{topology}": [handle.worker_pid],
                    f"deps-{topology}": handle.dep_pids,
                }
                memory_of[name] = (f"web-{topology}", f"worker-{topology}")
                targets.append(
                    Target(
                        name=name,
                        groups=memory_of[name],
                        routes={
                            label: Route(handle.url, f"Bearer {handle.keys[label]}")
                            for label in bases
                        },
                    )
                )
                print(f"{name}: {handle.url}", flush=True)
            peer = None
            if not litellm_skipped:
                try:
                    peer = LiteLLM(children, workdir, bases)
                except RuntimeError as exc:
                    litellm_skipped = f"LiteLLM did not start: {exc}"
                else:
                    groups["litellm"] = [peer.pid]
                    memory_of["litellm"] = ("litellm",)
                    targets.append(peer.target)
                    print(f"litellm {litellm_version()}: {peer.url}", flush=True)
            if litellm_skipped:
                print(f"litellm skipped: {litellm_skipped}", flush=True)

            checked: dict[tuple[str, str, str], str | None] = {}
            for upstream, body_name, connections, round_ in cells:
                for target in targets:
                    children.check_alive()
                    route = target.routes[upstream]
                    key = (target.name, upstream, body_name)
                    if key not in checked:
                        status, answer = post(
                            route.url, body_for(body_name, route), route.authorization
                        )
                        checked[key] = check_answer(body_name, status, answer)
                    skipped = f"wrong answer: {checked[key]}" if checked[key] else None
                    if target.name == "litellm" and (body_name, connections) in LITELLM_NOT_RUN:
                        skipped = "not run (~0.3 s CPU per request; see LITELLM_NOT_RUN)"
                    if (
                        target.name in DEPS
                        and target.name != "relay"
                        and (upstream, body_name, connections, round_) != CLUSTER_CELL
                    ):
                        continue  # a topology's one row: beside the standalone one

                    if skipped:
                        results.append(
                            {
                                "target": target.name,
                                "upstream": upstream,
                                "body": body_name,
                                "connections": connections,
                                "round": round_,
                                "skipped": skipped,
                            }
                        )
                        print(
                            f"{target.name} {upstream} {body_name} c={connections}: {skipped}",
                            flush=True,
                        )
                        continue
                    result = run_cell(
                        target,
                        upstream,
                        body_name,
                        connections,
                        round_,
                        groups=groups,
                        memory_of=memory_of,
                        workdir=workdir,
                        warmup_s=warmup_s,
                        duration_s=duration_s,
                        relay_handle=handles.get(target.name),
                        peer=peer,
                    )
                    results.append(result)
                    print(describe(result), flush=True)
                    if result["target"] in handles and result["usage_records_added"] < (
                        result["requests"] - result["error_count"]
                    ):
                        print("  WARNING: fewer usage records than answered requests", flush=True)
            if (
                relay_handle is not None
                and "split96" in relay_handle.keys
                and os.environ.get("BENCH_BATCHES", "1") != "0"
            ):
                for row in batches.run(relay_handle, groups=groups):
                    batch_rows.append(row)
                    print(batches.describe(row), flush=True)
    except Exception:
        failed = True
        print(f"bench failed; process logs are in {log_dir}", file=sys.stderr)
        raise
    finally:
        finished = datetime.datetime.now(datetime.UTC)
        ratio_rows = report.ratios(results)
        verdicts = report.verdicts(results, litellm_skipped) + batches.verdicts(batch_rows)
        print("\n" + report.table(results))
        print(
            "\nCPU s/1k: CPU seconds per 1,000 requests (= ms per request) of the target's "
            "own processes\n(relay: gunicorn master+workers and the Celery worker, including "
            "writing the usage records;\ndirect: the fake upstream; litellm: its processes). "
            "pg/redis: the relay's PostgreSQL and Redis,\nnot included in CPU s/1k. RSS: "
            "peak resident memory summed over the processes (relay: web + worker);\nPSS: the "
            "same with shared pages counted once. other: cores busy with processes outside\n"
            "this benchmark during the run (a shared machine). scripts: Redis script calls\n"
            "per request, the request path's round trips (bench/redis_calls.py)."
        )
        print("\n" + report.ratios_table(ratio_rows))
        if batch_rows:
            print(
                "\nThe batch engine (c=1, one request at a time):\n"
                + "\n".join(batches.describe(row) for row in batch_rows)
            )
        print("\nTargets:\n" + report.verdicts_table(verdicts))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_bytes(
            orjson.dumps(
                {
                    "started": started.isoformat(timespec="seconds"),
                    "finished": finished.isoformat(timespec="seconds"),
                    "command": " ".join([Path(sys.executable).name, "-m", "bench.run"]),
                    "environment": {k: os.environ[k] for k in os.environ if k.startswith("BENCH_")},
                    "machine": {
                        "cpus": os.cpu_count(),
                        "platform": platform.platform(),
                        "python": platform.python_version(),
                        "load_avg": os.getloadavg(),
                    },
                    "settings": {
                        "duration_s": duration_s,
                        "warmup_s": warmup_s,
                        "quick": quick,
                        "wrk_timeout_s": wrk.TIMEOUT_S,
                        "open_files": open_files,
                        "upstream_processes": 2,
                        "web_workers": 2,
                        "celery_concurrency": 1,
                    },
                    "litellm": {"version": litellm_version(), "skipped": litellm_skipped},
                    "results": results,
                    "batches": batch_rows,
                    "ratios": ratio_rows,
                    "targets": verdicts,
                    "failed": failed,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        print(
            f"\nraw results: {RESULTS.relative_to(ROOT)}; took "
            f"{(finished - started).total_seconds() / 60:.1f} min",
            flush=True,
        )
        keep_logs(log_dir)
        if failed:
            atexit.unregister(shutil.rmtree)  # keep the full logs
    return 0


if __name__ == "__main__":
    # A SIGTERM unwinds like Ctrl-C, so every server started is stopped
    # (PostgreSQL runs detached and would otherwise outlive the runner).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
