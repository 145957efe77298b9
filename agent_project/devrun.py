"""``make run``: everything on the embedded defaults, in one terminal.

Starts (or joins) the embedded PostgreSQL (waiting for one still shutting down after a previous stop), migrates,
declares the schedules, then runs gunicorn (API + admin) and the task worker (``run_worker``: one django-q2
cluster per queue) under a supervisor: a child that dies is restarted with backoff, and only Ctrl-C or SIGTERM
stops everything, the embedded PostgreSQL too when this run started it (agent_project/lib/supervise.py).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import django

from agent_project.lib.supervise import Child, Supervisor

BASE_DIR = Path(__file__).resolve().parent.parent


def _operator_hint() -> str:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return "log in with your operator account (new one: make operator)"
    if not _debug():
        return "create an operator account first: make operator"
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "admin@localhost", password)
    # beside the data folder it belongs to (var/ by default)
    note = (settings.EMBEDDED_PG.pgdata.parent if settings.EMBEDDED_PG else BASE_DIR / "var") / "admin-password.txt"
    note.write_text(password + "\n")
    note.chmod(0o600)
    shown = note.relative_to(BASE_DIR) if note.is_relative_to(BASE_DIR) else note
    return f"first start: created operator 'admin' with password {password} (also in {shown})"


def _debug() -> bool:
    from django.conf import settings

    return settings.DEBUG


def gunicorn_args(port: int) -> list[str]:
    """gunicorn's command line for ``make run``: on 127.0.0.1 unless ``HOST`` says otherwise
    (``HOST=0.0.0.0 make run`` to expose it; /metrics and the admin are open in debug), and
    without gunicorn's access log (it printed query strings in full): the app's own request
    line (agent_project/requestlog.py), masked, is the one log line per request."""
    host = os.environ.get("HOST", "127.0.0.1")
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ["-m", "gunicorn", "agent_project.wsgi", "-c", "agent_project/gunicorn_conf.py",
            "--bind", bind, "--workers", os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads", os.environ.get("WEB_THREADS", "4"), "--timeout", "120", "--graceful-timeout", "5"]


def _serving(url: str) -> bool:
    """The web answers /health with its database reachable (the workers' first heartbeats come later: 503 till
    then)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = resp.read()
    except urllib.error.HTTPError as answered:
        body = answered.read()
    except OSError:
        return False
    try:
        return bool(json.loads(body)["database"]["ok"])
    except (ValueError, KeyError, TypeError):
        return False


def _wait_serving(url: str, supervisor, timeout: float = 90) -> bool:
    """At start a child that exits (a port in use, a broken setting) stops the run rather than being retried."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.exited():
            return False
        if _serving(url):
            return True
        time.sleep(0.3)
    return False


def _stop_database(embedded) -> None:
    """Stop the embedded PostgreSQL when this run started it, or nobody else uses it (a server a one-off
    manage.py command left behind); leave it to another process (a second `make run`, a shell) still using it."""
    import psycopg
    from django.db import connections

    from agent_project.lib.embedded_pg import other_clients, stop_server

    connections.close_all()
    try:
        in_use = not embedded.started_here and other_clients(embedded) > 0
    except psycopg.Error:  # going away under us: stop_server() below finds out
        in_use = False
    if in_use:
        return
    if stop_server(embedded.pgdata):
        print("Stopped the embedded PostgreSQL.", flush=True)
    else:
        print("The embedded PostgreSQL had already stopped.", flush=True)


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_project.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    embedded = settings.EMBEDDED_PG
    port = int(os.environ.get("PORT", "8000"))
    env = dict(os.environ)
    if not settings.API_KEY and settings.DEBUG:
        # No global key configured: make one for this session so the curl example works.
        env["API_KEY"] = "dev_" + secrets.token_urlsafe(24)
    global_key = env.get("API_KEY", "")

    call_command("migrate", interactive=False, verbosity=0)
    call_command("setup_schedules", verbosity=0)
    operator = _operator_hint()

    python = sys.executable
    web = Child("web", [python, *gunicorn_args(port)], env=env, cwd=BASE_DIR)
    worker_env = dict(env)
    if settings.WORKER_METRICS_PORT and not worker_env.get("PROMETHEUS_MULTIPROC_DIR"):
        # the worker's own /metrics (docs/ops.md) needs a folder its processes write to
        worker_env["PROMETHEUS_MULTIPROC_DIR"] = str(BASE_DIR / "var" / "prometheus-worker")
    worker = Child("worker", [python, "manage.py", "run_worker"], env=worker_env, cwd=BASE_DIR)
    supervisor = Supervisor([web, worker], log=lambda line: print(line, file=sys.stderr, flush=True))

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        supervisor.start_all()
        if not _wait_serving(f"http://127.0.0.1:{port}/health", supervisor):
            print("The server did not start; see the log above.", file=sys.stderr)
            return 1
        base = f"http://localhost:{port}"
        print(
            f"""
Layan is up in {time.monotonic() - t0:.1f}s.
  API:    {base}/   (docs: {base}/api/docs)
  Admin:  {base}/admin/  - {operator}
  Database: {"embedded PostgreSQL in " + str(embedded.pgdata) if embedded else "DATABASE_URL"}
  Global API key{" (this session only; set API_KEY in .env to keep one)" if not settings.API_KEY else ""}: {global_key}

Try:
  curl -s -X PUT {base}/tenants/demo/settings -H 'X-API-Key: {global_key}' -H 'Content-Type: application/json' \\
       -d '{{"name": "Toko Demo", "persona": "Kamu adalah asisten Toko Demo yang ramah."}}'
  curl -s -X POST {base}/chat -H 'X-API-Key: {global_key}' -H 'Content-Type: application/json' \\
       -d '{{"tenant_id": "demo", "user_id": "u1", "messages": [{{"role": "user", "content": "Halo, jam buka?"}}]}}'
A web server or worker that dies is restarted; Ctrl-C stops everything.
  (web pid {web.pid}, worker pid {worker.pid})
""",
            flush=True,
        )
        supervisor.run()
        return 0
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        supervisor.stop()
        if embedded is not None:
            _stop_database(embedded)


if __name__ == "__main__":
    sys.exit(main())
