"""gunicorn settings for the relay: async (uvicorn) workers, so one process
holds thousands of requests in flight while they wait on the upstream.

The application is loaded once, in the master, and the workers are forked
from it (``preload_app``): Django, every view module and the cl100k_base
encoding (~38 MB on its own) sit in pages the workers share instead of one
copy each (docs/deploy.md, "Memory"). Nothing in the master opens a
connection: the Redis pool and the upstream session are made per event loop,
on first use, inside a worker (relay/connections/pools.py), and the master runs no
query. The master's Prometheus files hold zeros; a worker's first sample
re-opens them under its own pid (prometheus_client notices the fork).
"""

import gc
import os

from gunicorn.glogging import Logger

from relay.server import environment

# uvicorn's worker, sharing connections evenly between the workers
# (relay/server/accept_balance.py).
worker_class = "relay.server.web_worker.BalancedUvicornWorker"
# A bad value is one line and exit 1, not gunicorn's traceback of its config
# file (python -m relay.server checks them before gunicorn is even imported).
workers, timeout = environment.read()
bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
graceful_timeout = 30
keepalive = 75
# A connection backlog deep enough for 1,000 clients arriving at once.
backlog = 4096
accesslog = None
# Load the application once, in the master. A code change then needs a
# restart rather than a HUP (a deployment restarts anyway).
preload_app = True


class PidLogger(Logger):
    """gunicorn's own lines name their process (``[%(process)d]``), but once
    Django is loaded, relay/lib/jsonlog.py stops records from looking the pid up
    (a system call per request line); the preloaded master loads it before
    its first line. gunicorn's handlers (uvicorn's lines go through them too)
    put the pid back."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.addFilter(_with_pid)


def _with_pid(record):
    if record.process is None:
        record.process = os.getpid()
    return True


logger_class = PidLogger


def on_starting(server):
    # The board the workers publish their connections on: made before any
    # fork, so every worker maps the same memory. Room for restarts that
    # overlap and for workers added with TTIN.
    from relay.server import web_worker

    web_worker.make_board(slots=max(8, 4 * server.cfg.workers))


def when_ready(server):
    # In the master, after the application was imported and before the first
    # fork: load what each worker would otherwise load on its first request.
    from django.urls import get_resolver

    from relay.contract import tokens

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf: every view, the pipeline)
    tokens.encoding()


def pre_fork(server, worker):
    from relay.server import web_worker

    web_worker.reserve_slot(server, worker)
    # A connection is never shared by two processes. The master made none,
    # so this closes nothing; it is a guard.
    from django.db import connections

    connections.close_all()
    # Everything loaded so far goes to the collector's permanent generation:
    # a worker's collections never write into those objects, so their pages
    # stay shared instead of being copied into each worker.
    gc.freeze()


def post_worker_init(worker):
    # Memory a burst of big answers used goes back to the system afterwards.
    from django.conf import settings

    from relay.server import heap

    heap.start_trimming(settings.RELAY_HEAP_TRIM_S)


def child_exit(server, worker):
    from relay.server import web_worker

    web_worker.free_slot(worker)
    # A dead worker's metric files are merged into the totals, not lost.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
