"""How a web process's heap serves big answers, and gives their memory back.

A 2,048-item answer is megabytes, and so is the cache's reply it is built
from. glibc's malloc serves blocks that big with a fresh ``mmap`` and hands
them back on ``free`` (or trims the heap's top as soon as that much is
free): every such request then touches megabytes of new pages, and each
page costs a fault. A fully cached 2,048-item request spent ~2 ms of system
CPU that way (docs/benchmarks.md). So big blocks come from the heap too
(``M_MMAP_THRESHOLD``) and ``free`` does not trim (``M_TRIM_THRESHOLD``):
the next request reuses the same pages.

What a burst used is given back on a clock instead: ``malloc_trim(0)``
returns every free page wherever it sits (the address space kept); after a
burst of 16-input float batches at 1,000 connections a web process stayed
~100 MB above where it started without it. Here it took 0.1 ms on average
and 1.5 ms at most, under load; it runs every RELAY_HEAP_TRIM_S.

Set up in each web process by gunicorn (relay/server/gunicorn_conf.py). Without
glibc (musl, macOS) there is nothing to call and nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap: a 2,048-item answer of 1,024
# floats each is ~45 MB as JSON (11 MB in base64).
MMAP_THRESHOLD = 64 << 20
# free() gives back the heap's top only beyond this; the clock does the rest.
TRIM_THRESHOLD = 512 << 20


def _libc_function(name: str):
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):
        return None


def _malloc_trim():
    return _libc_function("malloc_trim")


def keep_big_blocks() -> bool:
    """Serve big blocks from the heap and keep them for the next request
    (False where glibc is not there to ask)."""
    mallopt = _libc_function("mallopt") if _malloc_trim() is not None else None
    if mallopt is None:
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


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
