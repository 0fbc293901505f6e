"""Handing freed heap memory back to the system (relay/server/heap.py)."""

from __future__ import annotations

import ctypes

import psutil
import pytest

from relay.server import heap
from tests.helpers import wait_until

trim = heap._malloc_trim()
glibc_only = pytest.mark.skipif(trim is None, reason="malloc_trim is glibc's")


def resident_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


@glibc_only
def test_trimming_returns_memory_freed_in_the_middle_of_the_heap():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # As under load: once a big block was freed, glibc serves blocks of that
    # size from the heap instead of mapping each one apart...
    libc.free(libc.malloc(2_000_000))
    # ...and of ~500 KB answers, those freed between ones still alive stay
    # with the process: free() can only shrink the heap from its top.
    answers = []
    for _ in range(400):
        answers.append(libc.malloc(500_000))
        ctypes.memset(answers[-1], 1, 500_000)
    for answer in answers[::2]:
        libc.free(answer)
    kept = resident_mb()

    trim(0)

    assert kept - resident_mb() > 75  # of the ~100 MB freed
    for answer in answers[1::2]:
        libc.free(answer)


@glibc_only
def test_each_web_process_trims_on_a_schedule(monkeypatch):
    # glibc's own malloc_trim, watched: the thread must really call it, again
    # and again (a thread that is merely alive proves nothing).
    calls = []

    def watched(pad):
        calls.append(pad)
        return trim(pad)

    monkeypatch.setattr(heap, "_malloc_trim", lambda: watched)
    thread = heap.start_trimming(0.01)

    assert thread is not None and thread.daemon
    wait_until(lambda: len(calls) >= 3, timeout_s=10)
    assert set(calls) == {0}  # trim everything, keep no padding
    assert thread.is_alive()


def test_a_period_of_zero_starts_nothing():
    assert heap.start_trimming(0) is None
