"""gunicorn settings for the relay: async (uvicorn) workers, so one process
holds thousands of requests in flight while they wait on the upstream."""

import multiprocessing
import os

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count(), 4)))
bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# Long enough for the slowest upstream read plus failover attempts.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "180"))
graceful_timeout = 30
keepalive = 75
# A connection backlog deep enough for 1,000 clients arriving at once.
backlog = 4096
accesslog = None


def child_exit(server, worker):
    # A dead worker's metric files are merged into the totals, not lost.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
