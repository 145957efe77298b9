"""A django-q2 cluster whose processes are killed with -9 (agent_project/cluster.py).

django-q2 reincarnated them on the same multiprocessing queues, whose reader lock a killed process may hold for
good: the new monitor never recorded a result again, the broker's rows stayed locked. Now the cluster stops with
RESTART_EXIT_CODE, and ``run_worker`` (all queues) starts it afresh, leaving the other queue's cluster alone."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django_q.models import Task

from agent_project.cluster import RESTART_EXIT_CODE
from agent_project.testing.procs import ROOT, children, cmdline, production_env, stop_group, wait_until
from followups.tests.support import database_env, enqueue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _run_worker(tmp_path, *args: str) -> tuple[subprocess.Popen, object]:
    log_path = tmp_path / f"run_worker-{uuid.uuid4().hex[:6]}.log"
    env = production_env(**database_env(), Q_CLUSTER_NAME=settings.Q_CLUSTER["name"], Q_WORKERS="2",
                         LOG_LEVEL="INFO", CONN_MAX_AGE="0")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "run_worker", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log_path


def _task_runs(proc, label: str) -> None:
    """A task sent to the realtime queue now gets its result recorded."""
    name = f"{label}-{uuid.uuid4().hex[:8]}"
    enqueue("math.floor", 2.5, task_name=name)
    wait_until(lambda: Task.objects.filter(name=name, success=True).exists(), timeout=120,
               what=f"a result for {label}", procs=[proc])


def test_a_cluster_whose_monitor_is_killed_stops_to_be_restarted(tmp_path):
    proc, log_path = _run_worker(tmp_path, "--queue", "realtime", "--metrics-port", "0")
    try:
        _task_runs(proc, "before")
        monitor = int(re.search(r"monitoring at (\d+)", log_path.read_text()).group(1))
        subprocess.run(["kill", "-9", str(monitor)], check=True)
        # It used to go on "running" for ever, recording nothing; now it exits, saying why.
        assert proc.wait(timeout=60) == RESTART_EXIT_CODE
        log = log_path.read_text()
        assert f"the cluster's monitor (pid {monitor}) died" in log and "reincarnated monitor" not in log
    finally:
        stop_group(proc)


def test_run_worker_restarts_the_cluster_whose_children_were_killed_and_it_records_results_again(tmp_path):
    proc, log_path = _run_worker(tmp_path, "--metrics-port", "0")  # all queues
    try:
        _task_runs(proc, "before")
        by_queue = {queue: next(pid for pid in children(proc.pid) if f"--queue {queue}" in cmdline(pid))
                    for queue in ("realtime", "ingest")}
        [sentinel] = children(by_queue["realtime"])
        victims = children(sentinel)  # its workers, monitor and pusher: what was killed in the attack
        assert len(victims) == 4
        for pid in victims:
            subprocess.run(["kill", "-9", str(pid)], check=True)
        wait_until(lambda: f"worker-realtime (pid {by_queue['realtime']}) exited with exit code {RESTART_EXIT_CODE}"
                   in log_path.read_text(), timeout=60, what="the realtime cluster to stop for a restart",
                   procs=[proc])
        _task_runs(proc, "after")  # the fresh cluster records results
        now = {queue: next(pid for pid in children(proc.pid) if f"--queue {queue}" in cmdline(pid))
               for queue in ("realtime", "ingest")}
        assert now["realtime"] != by_queue["realtime"] and now["ingest"] == by_queue["ingest"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        stop_group(proc)
