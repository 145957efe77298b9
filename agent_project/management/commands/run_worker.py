"""``manage.py run_worker``: the task workers, one django-q2 cluster per queue, with their own ``/metrics``.

Two queues (settings.Q_QUEUES, docs/ops.md "Task queues"): ``realtime`` (follow-ups, channel messages, event
deliveries, the periodic schedules) and ``ingest`` (knowledge documents). Each has a cluster of its own, so four
slow PDFs keep the ingest workers busy while a due follow-up still goes out. ``--queue all`` (the default: what
compose and ``make run`` start) runs both, each in a child process that is restarted alone, with backoff, if it
dies (agent_project/lib/supervise.py); ``--queue realtime`` or ``--queue ingest`` runs one, to scale a queue as a
service of its own. A cluster whose process died suddenly stops itself to be started afresh
(agent_project/cluster.py).

The worker's processes record what tasks do (follow-ups sent or failed, embedding batches of uploads, model calls
of scheduled jobs) and the web's ``/metrics`` cannot see them. With ``WORKER_METRICS_PORT`` set this command serves
them there; the cluster processes write their numbers to ``PROMETHEUS_MULTIPROC_DIR``, which must therefore be set
in the environment before the command starts.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

QUEUES = ("realtime", "ingest")


class Command(BaseCommand):
    help = "Run the task workers: a django-q2 cluster per queue (realtime, ingest), metrics on WORKER_METRICS_PORT."

    def add_arguments(self, parser):
        parser.add_argument("--queue", choices=[*QUEUES, "all"], default="all",
                            help="the queue to serve (default: all, each in a supervised child process)")
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="serve /metrics on this port (default: WORKER_METRICS_PORT; 0 = do not serve)")

    def handle(self, *args, **options):
        port = options["metrics_port"]
        if port is None:
            port = settings.WORKER_METRICS_PORT
        if port:
            self._serve_metrics(port)
        queues = list(QUEUES) if options["queue"] == "all" else [options["queue"]]
        if queues == [settings.WORKER_QUEUE]:
            from agent_project.cluster import run_cluster

            if not settings.EMBEDDING_THREADS:
                # Both queues' worker processes share the host's cores: one embedding call each gets its share,
                # so background ingestion cannot starve the others.
                workers = settings.Q_REALTIME_WORKERS + settings.Q_INGEST_WORKERS
                settings.EMBEDDING_THREADS = max(1, (os.cpu_count() or 1) // max(1, workers))
            code = run_cluster()  # this process is that queue's cluster
        else:
            code = self._supervise(queues)
        if code:
            sys.exit(code)

    def _serve_metrics(self, port: int) -> None:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not folder:
            raise CommandError("Worker metrics need PROMETHEUS_MULTIPROC_DIR (an empty, writable folder) in the "
                               "environment: the worker processes write their numbers there.")
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # a previous run's numbers would be summed in
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))
        from agent_project.metrics import serve_worker_metrics

        serve_worker_metrics(port)
        self.stdout.write(f"worker metrics on :{port}/metrics")

    def _supervise(self, queues: list[str]) -> int:
        """A child process per queue (the queue is chosen before Django loads: django-q2 reads it at import),
        restarted if it dies, all stopped on SIGTERM/SIGINT."""
        from agent_project.lib.supervise import Child, Supervisor

        manage = Path(settings.BASE_DIR) / "manage.py"
        children = [Child(f"worker-{queue}", [sys.executable, str(manage), "run_worker", "--queue", queue,
                                              "--metrics-port", "0"],
                          env={**os.environ, "WORKER_QUEUE": queue}, cwd=Path(settings.BASE_DIR))
                    for queue in queues]
        supervisor = Supervisor(children, log=lambda line: self.stderr.write(line))

        def stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        supervisor.start_all()
        self.stdout.write("workers: " + ", ".join(f"{c.name} (pid {c.pid})" for c in children))
        try:
            supervisor.run()
        except KeyboardInterrupt:
            pass
        finally:
            supervisor.stop()
        return 0
