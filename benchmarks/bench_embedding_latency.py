"""Query embedding inside gunicorn workers, with 4 clients at once: the latency a customer's
question pays for being embedded, as a web process of ``make run`` (or the compose file) runs it.

gunicorn serves the app on the benchmark database (the same ``agent_project/gunicorn_conf.py``,
so each worker gets its share of the cores for an embedding call, ``EMBEDDING_THREADS``). Four
client threads send ``POST /kb/search`` with FacQA questions, a new one every time (nothing
cached); each answer reports ``timings.embedding_ms``, measured inside the worker, and the client
times the whole request. The tenant holds a small knowledge base (a shop FAQ), so the search
itself costs little. Each embedder configuration runs in a gunicorn of its own.

    python benchmarks/bench_embedding_latency.py [--requests 400] [--clients 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _kb_setup import ROOT, percentile, setup_django, table
from bench_knowledge_quality import DATA, bench_tenant, load_facqa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict, workers: int, log: Path):
    from django.conf import settings

    port = free_port()
    child = {k: v for k, v in os.environ.items() if k != "EMBEDDING_THREADS"}  # each config sets its own
    child.update({"DJANGO_SETTINGS_MODULE": "agent_project.settings", "HF_HUB_OFFLINE": "1",
                  "EMBEDDED_PG_DIR": str(settings.EMBEDDED_PG.pgdata), "PORT": str(port),
                  "WEB_CONCURRENCY": str(workers), "LOG_LEVEL": "WARNING", **env})
    handle = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "agent_project/gunicorn_conf.py",
                             "--bind", f"127.0.0.1:{port}", "agent_project.wsgi"], cwd=ROOT, env=child,
                            stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("gunicorn did not answer")


def run(port: int, key: str, questions: list[str], clients: int) -> tuple[list[float], list[float], float]:
    embedding_ms, request_ms, lock = [], [], threading.Lock()
    queue = iter(questions)

    def client():
        while True:
            with lock:
                question = next(queue, None)
            if question is None:
                return
            body = json.dumps({"query": question, "k": 5}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/kb/search", data=body, method="POST",
                                             headers={"X-API-Key": key, "Content-Type": "application/json"})
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                request_ms.append(elapsed)
                embedding_ms.append(answer["timings"]["embedding_ms"])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return embedding_ms, request_ms, len(request_ms) / (time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (make run starts 2)")
    args, _ = parser.parse_known_args(argv)
    setup_django("local")
    from knowledge.services import entries_upsert
    from tenants.scoping import tenant_scope

    tenant, key = bench_tenant("bench-embed-latency")
    shop = json.loads((DATA / "shop_faq_tune.json").read_text(encoding="utf-8"))["businesses"][0]
    with tenant_scope(tenant):
        entries_upsert(tenant=tenant, entries=[{"title": e["title"], "content": e["content"]} for e in shop["entries"]])
    questions = [q for split in load_facqa()[1].values() for q, _ in split]
    configs = [("e5, threads per worker from gunicorn_conf", {"EMBEDDING_PROVIDER": "local", "EMBEDDING_MODEL_NAME": ""}),
               ("e5, EMBEDDING_THREADS=2", {"EMBEDDING_PROVIDER": "local", "EMBEDDING_MODEL_NAME": "",
                                            "EMBEDDING_THREADS": "2"})]
    try:
        import sentence_transformers  # noqa: F401  (the torch extra)

        configs.append(("MiniLM (torch), threads per worker", {"EMBEDDING_PROVIDER": "local",
                                                              "EMBEDDING_MODEL_NAME": "all-MiniLM-L6-v2"}))
    except ImportError:
        print("(the torch extra is not installed: MiniLM is left out)")
    rows, used = [], 0
    for label, env in configs:
        proc, port = serve(env, args.workers, ROOT / "var" / "bench-embed-gunicorn.log")
        try:
            batch = questions[used:used + args.requests + 20]
            used += len(batch)
            run(port, key, batch[:20], args.clients)  # every worker's first requests
            embedding, request, rate = run(port, key, batch[20:], args.clients)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        rows.append([label, len(request), percentile(embedding, 50), percentile(embedding, 95),
                     percentile(request, 50), percentile(request, 95), rate])
    print(f"{args.workers} gunicorn workers, {args.clients} clients at once, new questions (nothing cached), "
          f"{os.cpu_count()} cores")
    print(table(["embedder", "requests", "embedding p50 ms", "embedding p95 ms", "/kb/search p50 ms",
                 "/kb/search p95 ms", "requests/s"], rows))


if __name__ == "__main__":
    main()
