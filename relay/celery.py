"""The Celery app. The worker tier is one process:

- The tasks (billing/tasks.py) wait on PostgreSQL and Redis, so they run in
  threads of the worker (``CELERY_WORKER_POOL = "threads"``), not in forked
  pool children: each child is another copy of Django and the task modules.
- ``--beat-thread`` runs the beat scheduler in a thread of the worker, where
  ``--beat`` forks a process for it (``python3 dev.py run``, the benchmark).
  Deployments with several workers run ``celery -A relay beat`` once
  instead (compose.yaml), which sends the schedule without loading Django's
  apps (``StandaloneBeat``).
- A thread cannot be killed the way prefork kills a child that runs past
  ``task_time_limit``; with a thread (or solo) pool, a task still running
  past it ends the worker process instead (``HardTimeLimit``), and its
  supervisor (compose's restart policy, the dev launcher) starts a new one.
  Nothing is lost: tasks are acknowledged late, every scheduled task
  expires, and the usage events a dead worker held are claimed again by the
  next drain (billing/streams.py), as when a worker is killed.
"""

import functools
import gc
import logging
import os
import threading
import time

import click
from celery import Celery, bootsteps, signals
from celery.apps.beat import Beat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay.settings")
# Django's system checks (run by ``migrate`` and ``check --deploy``) would
# otherwise run again at every worker start, and import the whole URLconf
# (every view, the upstream client) into a process that serves none of it.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

log = logging.getLogger(__name__)


class StandaloneBeat(Beat):
    """``celery -A relay beat``: the schedule's tasks are sent by name (their
    definitions in billing/tasks.py set no options of their own; the
    schedule's ``options`` still apply), so neither Django's apps nor the
    task modules are loaded: ~45 MB rather than ~85."""

    def init_loader(self) -> None:
        self.app.finalize()


class RelayCelery(Celery):
    @functools.cached_property
    def Beat(self):  # noqa: N802 (Celery's name)
        return self.subclass_with_self(StandaloneBeat)


app = RelayCelery("relay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The relay app's packages with tasks of their own (relay/health, relay/notices).
app.autodiscover_tasks(["relay.health", "relay.notices"])


class BeatThread(bootsteps.StartStopStep):
    """``--beat-thread``: the beat scheduler in a thread of this worker, on a
    broker connection of its own. Like ``--beat`` (give one or the other),
    one in a deployment."""

    label = "Beat (thread)"
    conditional = True

    def __init__(self, w, beat_thread=False, **kwargs):
        self.enabled = bool(beat_thread)
        super().__init__(w, **kwargs)

    def create(self, w):
        from celery.beat import EmbeddedService

        return EmbeddedService(
            w.app, thread=True, schedule_filename=w.schedule_filename, scheduler_cls=w.scheduler
        )


class HardTimeLimit(bootsteps.StartStopStep):
    """``task_time_limit`` for pools that cannot enforce it (threads, solo):
    a task past it ends the process, as prefork ends a child."""

    label = "Hard time limit"

    def __init__(self, w, **kwargs):
        pool = w.pool_cls if isinstance(w.pool_cls, str) else w.pool_cls.__module__
        self.enabled = pool.rsplit(".", 1)[-1] in ("thread", "threads", "solo")
        super().__init__(w, **kwargs)

    def create(self, w):
        return Watchdog(w.app.conf.task_time_limit)


class Watchdog:
    """Deadlines of the tasks running in this process, and a thread that
    ends the process when one passes."""

    def __init__(self, default_limit_s: float | None) -> None:
        self.default_limit_s = default_limit_s
        self._deadlines: dict[str, tuple[float, str]] = {}
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._watch, name="HardTimeLimit", daemon=True)

    def start(self) -> None:
        signals.task_prerun.connect(self._arm, weak=False)
        signals.task_postrun.connect(self._disarm, weak=False)
        self._thread.start()

    def stop(self) -> None:
        signals.task_prerun.disconnect(self._arm)
        signals.task_postrun.disconnect(self._disarm)
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _arm(self, task_id=None, task=None, **_kwargs) -> None:
        limit = getattr(task, "time_limit", None) or self.default_limit_s
        if task_id and limit:
            with self._changed:
                self._deadlines[task_id] = (time.monotonic() + limit, task.name)
                self._changed.notify()

    def _disarm(self, task_id=None, **_kwargs) -> None:
        with self._changed:
            self._deadlines.pop(task_id, None)

    def _watch(self) -> None:
        with self._changed:
            while not self._stopped:
                now = time.monotonic()
                overdue = [(tid, name) for tid, (at, name) in self._deadlines.items() if at <= now]
                if overdue:
                    task_id, name = overdue[0]
                    log.critical(
                        "task %s[%s] ran past its hard time limit; ending this worker process "
                        "(its thread cannot be interrupted) so that a fresh one takes over",
                        name,
                        task_id,
                    )
                    logging.shutdown()
                    os._exit(1)
                wait = min((at for at, _name in self._deadlines.values()), default=None)
                self._changed.wait(None if wait is None else max(wait - now, 0.05))


app.user_options["worker"].add(
    click.Option(
        ["--beat-thread"],
        is_flag=True,
        default=False,
        help="Also run the beat scheduler, in a thread of this worker (one per deployment).",
    )
)
app.steps["worker"].add(BeatThread)
app.steps["worker"].add(HardTimeLimit)


# A worker's collector runs a pass every 700 net allocations by default; a
# usage drain round allocates some ten objects an event (the entry, its
# decoded fields, the event, the row), so thousands of passes a second, each
# of the older generations walking every object Django and the task modules
# loaded. Everything loaded at start goes to the permanent generation
# (as gunicorn's workers do, relay/server/gunicorn_conf.py) and the youngest
# generation is collected every 50,000: the drain spent a fifth of its CPU
# in the collector before (docs/scaling.md).
GC_YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


@signals.worker_init.connect
def _on_worker_init(**_kwargs) -> None:
    tune_collector()
