"""The django-q2 cluster of one task queue, as ``manage.py run_worker`` runs it: stopped, not reincarnated, when
one of its processes dies suddenly, so that its supervisor starts it afresh.

Why: django-q2's sentinel replaces a worker, the monitor or the pusher that died with a new process on the same
multiprocessing queues. A process killed while it waited in ``Queue.get()`` (an idle worker, the monitor: that is
where they spend their time) dies holding the queue's reader lock, a semaphore nobody will ever release, and
whatever it had half read stays in the pipe. The new monitor then blocks for good on the result queue, or every
worker on the task queue: after kill -9 of a cluster's children the log said "reincarnated monitor", tasks were
taken from the broker and never acknowledged (the ORM broker's rows stayed locked until its ``retry``, then ran
again, with the same outcome), and no result was recorded again. Nothing in the process can tell a poisoned
queue from a quiet one, so the only safe recovery is fresh queues, i.e. a fresh cluster.

So a sudden death stops the pusher, lets busy workers finish for a few seconds, kills what is left and exits
with ``RESTART_EXIT_CODE``; ``run_worker`` (or ``make run``, or the container's restart policy) starts the
cluster again. A worker that django-q2 itself ended (its task timed out, or it was recycled after
``recycle`` tasks) is still replaced in place: it was not inside a queue call.
"""

from __future__ import annotations

import logging
import os
import time

import django_q.cluster
from django.db import connections
from django_q.cluster import Cluster, Sentinel

logger = logging.getLogger(__name__)

#: the cluster stopped itself to be started again (EX_TEMPFAIL)
RESTART_EXIT_CODE = 75
#: how long a worker busy with a task may finish it before the cluster goes down
BUSY_GRACE_SECONDS = 10.0


def _ended_by_django_q(process) -> bool:
    """A worker whose task timed out (timer 0) or that was recycled (-2)."""
    timer = getattr(process, "timer", None)
    return timer is not None and (timer.value == 0 or int(timer.value) == -2)


class RestartingSentinel(Sentinel):
    def reincarnate(self, process):
        if process in self.pool and _ended_by_django_q(process):
            return super().reincarnate(process)
        self._stop_for_restart(process)

    def _stop_for_restart(self, dead) -> None:
        role = "monitor" if dead is self.monitor else "pusher" if dead is self.pusher else "worker"
        logger.critical("the cluster's %s (pid %s) died with exit code %s; its queues may be locked for good, so "
                        "the cluster stops to be started afresh", role, dead.pid, dead.exitcode)
        self.event_out.set()  # the pusher takes nothing more from the broker
        deadline = time.monotonic() + BUSY_GRACE_SECONDS
        while time.monotonic() < deadline and any(p.is_alive() and p.timer.value > 0 for p in self.pool):
            time.sleep(0.2)
        processes = [p for p in (*self.pool, self.monitor, self.pusher) if p is not None and p is not dead]
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(timeout=5)
        connections.close_all()
        os._exit(RESTART_EXIT_CODE)


def run_cluster() -> int:
    """Run the cluster of this process's queue (settings.WORKER_QUEUE) until SIGTERM/SIGINT stops it (0) or it
    stops itself to be restarted (``RESTART_EXIT_CODE``)."""
    django_q.cluster.Sentinel = RestartingSentinel  # what Cluster.start() runs in its sentinel process
    cluster = Cluster()
    cluster.start()
    while cluster.sentinel.is_alive():
        cluster.sentinel.join(timeout=1)  # a signal's handler stops the cluster meanwhile
    code = cluster.sentinel.exitcode
    return 0 if code == 0 else code if code and code > 0 else 1
