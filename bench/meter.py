"""Measuring the benchmark's processes: CPU seconds and memory of process
trees over a run, and waiting for them to go quiet between runs."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Meter:
    """CPU seconds and peak resident memory of groups of process trees over a
    window: CPU from ``cpu_times()`` deltas per process (a process started
    inside the window counts from zero), memory sampled every ``interval_s``.
    Also the CPU the whole machine spent, to show how much went elsewhere
    (other people's work on a shared machine).

    Memory, two sums over the processes of ``memory_of``, each the highest
    seen in any one sample:

    - RSS: each process's resident pages, shared or not. A page several of
      them map (what a forked worker still shares with its parent, a shared
      library) is counted once per process, so the sum is more than the
      memory they take; the more they share, the further off it is.
    - PSS (``/proc/PID/smaps_rollup``): each resident page divided by the
      number of processes that map it. Pages only these processes share add
      up to exactly one copy in the sum; a library page also mapped by other
      programs counts in part. This is the memory these processes take.
    """

    def __init__(
        self,
        groups: dict[str, list[int]],
        *,
        memory_of: tuple[str, ...] = (),
        interval_s: float = 0.5,
    ) -> None:
        self.groups = groups
        self.memory_of = memory_of
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_rss: dict[str, int] = {}
        self.peak_rss_total = 0
        # Shared pages (a forked child's, the libraries') counted once.
        self.peak_pss_total = 0

    def _snapshot(self) -> dict[str, dict[tuple[int, float], float]]:
        taken: dict[str, dict[tuple[int, float], float]] = {}
        for group, roots in self.groups.items():
            per_process = taken.setdefault(group, {})
            for root in roots:
                for process in _tree(root):
                    with contextlib.suppress(psutil.Error):
                        per_process[(process.pid, process.create_time())] = _cpu_s(process)
        return taken

    def _sample_memory(self) -> None:
        while not self._stop.is_set():
            rss_total = pss_total = 0
            for group in self.memory_of:
                rss = 0
                for root in self.groups.get(group, []):
                    for process in _tree(root):
                        with contextlib.suppress(psutil.Error):
                            memory = process.memory_full_info()
                            rss += memory.rss
                            pss_total += memory.pss
                self.peak_rss[group] = max(self.peak_rss.get(group, 0), rss)
                rss_total += rss
            self.peak_rss_total = max(self.peak_rss_total, rss_total)
            self.peak_pss_total = max(self.peak_pss_total, pss_total)
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._started = self._snapshot()
        self._machine = psutil.cpu_times()
        self._children = os.times()
        self._wall = time.monotonic()
        if self.memory_of:
            self._thread = threading.Thread(target=self._sample_memory, daemon=True)
            self._thread.start()

    def stop(self) -> dict:
        ended = self._snapshot()
        machine = psutil.cpu_times()
        children = os.times()
        wall = time.monotonic() - self._wall
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        cpu = {
            group: sum(
                max(0.0, seconds - self._started.get(group, {}).get(key, 0.0))
                for key, seconds in per_process.items()
            )
            for group, per_process in ended.items()
        }
        busy = (
            machine.user
            + machine.nice
            + machine.system
            + machine.irq
            + machine.softirq
            + machine.steal
        ) - (
            self._machine.user
            + self._machine.nice
            + self._machine.system
            + self._machine.irq
            + self._machine.softirq
            + self._machine.steal
        )
        # wrk runs are waited-for children of this process.
        load_generator = (children.children_user + children.children_system) - (
            self._children.children_user + self._children.children_system
        )
        ours = (
            sum(cpu.values())
            + load_generator
            + (children.user + children.system - self._children.user - self._children.system)
        )
        return {
            "wall_s": round(wall, 3),
            "cpu_s": {group: round(seconds, 3) for group, seconds in cpu.items()},
            "wrk_cpu_s": round(load_generator, 3),
            "machine_busy_s": round(busy, 3),
            # CPU the machine spent on processes that are not part of this benchmark.
            "other_cores": round(max(0.0, busy - ours) / wall, 2) if wall else 0.0,
            "peak_rss_mb": {group: round(rss / 2**20, 1) for group, rss in self.peak_rss.items()},
            "peak_rss_total_mb": round(self.peak_rss_total / 2**20, 1),
            "peak_pss_total_mb": round(self.peak_pss_total / 2**20, 1),
        }


def quiet(
    pids: list[int], *, max_wait_s: float = 20, threshold_cores: float = 0.1
) -> tuple[float, bool]:
    """Wait until these process trees use less than ``threshold_cores`` (a
    peer still working through requests its client abandoned would otherwise
    run into the next measurement); how long it took, and whether they did."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait_s:
        before = sum(_cpu_s_safe(p) for pid in pids for p in _tree(pid))
        time.sleep(0.5)
        after = sum(_cpu_s_safe(p) for pid in pids for p in _tree(pid))
        if (after - before) / 0.5 < threshold_cores:
            return time.monotonic() - started, True
    return time.monotonic() - started, False


def _cpu_s_safe(process: psutil.Process) -> float:
    try:
        return _cpu_s(process)
    except psutil.Error:
        return 0.0
