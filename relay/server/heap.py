"""Giving back to the system the memory a burst of big answers used.

glibc's malloc keeps freed memory for reuse, and a heap shrinks only from its
top: after a burst of 16-input float batches at 1,000 connections a web
process stayed ~100 MB above where it started, its free chunks held between
live ones. ``malloc_trim(0)`` returns every free page wherever it sits (the
pages are handed back, the address space kept). Here it took 0.1 ms on
average and 1.5 ms at most, under load; a page given back costs a page fault
when it is used again, so it runs every RELAY_HEAP_TRIM_S rather than after
every request. Measured in docs/benchmarks.md.

Started in each web process by gunicorn (relay/server/gunicorn_conf.py). Without
glibc (musl, macOS) there is nothing to call and nothing is started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

log = logging.getLogger(__name__)


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def start_trimming(period_s: float) -> threading.Thread | None:
    """Trim the heap every ``period_s`` seconds from a daemon thread (ctypes
    lets go of the GIL for the call); None when it cannot or should not."""
    trim = _malloc_trim()
    if trim is None or period_s <= 0:
        return None

    def trim_forever() -> None:
        while True:
            time.sleep(period_s)
            trim(0)

    thread = threading.Thread(target=trim_forever, name="heap-trim", daemon=True)
    thread.start()
    return thread
