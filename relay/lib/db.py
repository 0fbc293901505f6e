"""Running database work from async code."""

from __future__ import annotations

import functools

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def off_loop(function):
    """``function`` as a coroutine run in the shared thread pool.

    The API handler sends no request signals, so the per-request cleanup
    Django would do (drop connections past CONN_MAX_AGE or broken by a
    database restart) happens here, in the thread that owns the connection.
    """

    @functools.wraps(function)
    def call(*args, **kwargs):
        close_old_connections()
        return function(*args, **kwargs)

    return sync_to_async(call, thread_sensitive=False)
