"""gunicorn settings for the container (``gunicorn -c agent_project/gunicorn_conf.py``).

Everything tunable comes from the environment, so scaling a web container up or
down is a change of ``WEB_CONCURRENCY`` / ``WEB_THREADS``, not of the image.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))  # a /chat answer waits on the model
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one JSON line per request itself (agent_project/requestlog.py)
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# One embedding call's threads in each worker: the cores shared by the workers (a query embedded on
# every core by each of several workers at once made them contend). EMBEDDING_THREADS overrides.
os.environ.setdefault("EMBEDDING_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, workers))))


def on_starting(server):
    # Prometheus multiprocess mode: every worker writes its numbers to files in this
    # folder, and /metrics sums them. Stale files of a previous run would be summed too.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))


def post_worker_init(worker):
    # Load the embedding model and the stemmer's dictionary before the first request, not
    # during it (MiniLM with torch: ~7 s on 2 cores, for every worker). WARM_UP=0 skips it.
    if os.environ.get("WARM_UP", "1").lower() in ("0", "false", "no", "off"):
        return
    import time

    started = time.monotonic()
    try:
        from agent_project.lib.embeddings import warm_up
        from knowledge import analysis

        embedder = warm_up()
        analysis.stem("pengiriman")
    except Exception as exc:  # a misconfigured provider is reported by /health and the first search
        worker.log.warning("worker %s: warm-up failed: %s", worker.pid, exc)
        return
    worker.log.info("worker %s: warmed up %s in %.1f s", worker.pid, embedder.name, time.monotonic() - started)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
