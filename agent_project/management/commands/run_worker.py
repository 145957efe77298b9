"""``manage.py run_worker``: the task worker (django-q2's ``qcluster``) with its own ``/metrics``.

The worker's processes record what tasks do — follow-ups sent or failed, embedding batches of
uploads processed in the background, model calls of scheduled jobs — and the web's
``/metrics`` cannot see them: they are other processes, in production another container. With
``WORKER_METRICS_PORT`` set this command serves them there (scrape it as a second target); the
worker processes, forked by the cluster, write their numbers to ``PROMETHEUS_MULTIPROC_DIR``,
which must therefore be set in the environment before the command starts.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the task worker (qcluster), serving its metrics on WORKER_METRICS_PORT when set."

    def add_arguments(self, parser):
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="serve /metrics on this port (default: WORKER_METRICS_PORT; 0 = do not serve)")

    def handle(self, *args, **options):
        port = options["metrics_port"]
        if port is None:
            port = settings.WORKER_METRICS_PORT
        if port:
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
        if not settings.EMBEDDING_THREADS:
            # The cluster's worker processes (forked from this one) share the cores: one embedding call
            # each gets its share, so background ingestion cannot starve the others.
            settings.EMBEDDING_THREADS = max(1, (os.cpu_count() or 1) // max(1, int(settings.Q_CLUSTER["workers"])))
        call_command("qcluster")
