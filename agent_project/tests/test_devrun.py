"""``make run`` (agent_project/devrun.py) as a user runs it, on a data folder of its own: its worker killed with
-9 comes back while the web server keeps serving, the follow-ups due meanwhile go out exactly once, nothing of
the killed worker is left running, and a stop after the database went away ends cleanly.

Before, kill -9 of the worker took gunicorn and the embedded PostgreSQL down with it ("A child process exited;
stopping"), and stopping with the server already gone printed a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from agent_project.lib.embedded_pg import stop_server
from agent_project.testing.procs import (
    ROOT, alive, children, cmdline, descendants, free_port, http, production_env, stop_group, wait_until,
)
from followups.tests.support import start_receiver

pytestmark = pytest.mark.slow

GLOBAL = "devrun-test-global-key-0123456789abcdef"


def test_a_killed_worker_comes_back_and_the_followups_due_meanwhile_go_out_exactly_once(tmp_path, pg_folder):
    receiver = start_receiver(secret="")
    port = free_port()
    pgdata = pg_folder
    env = production_env(PORT=str(port), EMBEDDED_PG_DIR=str(pgdata), API_KEY=GLOBAL, WEB_CONCURRENCY="1",
                         WEB_THREADS="2", Q_WORKERS="2", FOLLOWUP_DEFAULT_SENDER="webhook",
                         OUTBOUND_ALLOWED_PRIVATE_HOSTS=f"127.0.0.1:{receiver.server.port}")
    log_path = tmp_path / "make-run.log"
    with open(log_path, "w") as log:
        run = subprocess.Popen([sys.executable, "-m", "agent_project.devrun"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text()

    try:
        # Up, and both queues' workers have beaten (/health 200).
        wait_until(lambda: http("GET", f"{base}/health").status == 200, timeout=240, what="make run to be healthy",
                   procs=[run])
        created = http("PUT", f"{base}/tenants/toko/settings", {"name": "Toko", "webhook_url": receiver.url},
                       headers={"X-API-Key": GLOBAL})
        assert created.status == 201, created.body
        key = {"X-API-Key": created.json()["api_key"]}

        [web] = [pid for pid in children(run.pid) if "gunicorn" in cmdline(pid)]
        [worker] = [pid for pid in children(run.pid) if "run_worker" in cmdline(pid)]
        worker_tree = descendants(worker)
        assert len(worker_tree) >= 6  # two clusters: each a main process, a sentinel and its workers

        due = timezone.now() + timedelta(seconds=5)  # while the worker is down or starting again
        ids = []
        for i in range(12):
            answer = http("POST", f"{base}/followup/schedule",
                          {"user_id": f"pelanggan-{i}", "channel": "webhook", "message": f"Halo {i}",
                           "scheduled_at": due.isoformat()}, headers=key)
            assert answer.status == 201, answer.body
            ids.append(answer.json()["id"])
        os.kill(worker, signal.SIGKILL)

        wait_until(lambda: f"worker (pid {worker}) exited with signal 9 (SIGKILL)" in output(), timeout=30,
                   what="the supervisor to notice", procs=[run])
        wait_until(lambda: not any(alive(pid) for pid in worker_tree), timeout=120,
                   what="the killed worker's clusters to stop (nothing orphaned)")
        wait_until(lambda: len(receiver.keys()) == len(ids), timeout=300, interval=1,
                   what="every follow-up to reach the receiver", procs=[run])

        def statuses():
            answer = http("GET", f"{base}/followup?page_size=100", headers=key)
            return {row["id"]: (row["status"], row["attempts"]) for row in answer.json()["results"]}

        wait_until(lambda: set(statuses().values()) == {("sent", 1)}, timeout=60, what="every row to be sent")
        assert sorted(statuses()) == sorted(ids)
        assert set(receiver.keys().values()) == {1}  # exactly once on the wire

        assert alive(web) and web in children(run.pid)  # the web server was not touched
        [again] = [pid for pid in children(run.pid) if "run_worker" in cmdline(pid)]
        assert again != worker and "worker restarted" in output()
        assert http("GET", f"{base}/health").status == 200

        # The database goes away before the stop: a clean stop, no traceback from make run.
        stop_server(pgdata)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=120) == 0, output()[-3000:]
        text = output()
        assert "The embedded PostgreSQL had already stopped." in text, text[-3000:]
        assert "devrun.py" not in text and "embedded_pg.py" not in text, text[-5000:]  # no frame of ours
    finally:
        stop_group(run)
        receiver.server.stop()
