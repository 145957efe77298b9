"""``make run``: everything on the embedded defaults, in one terminal.

Starts (or joins) the embedded PostgreSQL, migrates, declares the schedules,
then runs gunicorn (API + admin) and the django-q2 cluster side by side. Ctrl-C
stops both, and the embedded PostgreSQL too when this run started it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent


def _operator_hint() -> str:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return "log in with your operator account (new one: make operator)"
    if not _debug():
        return "create an operator account first: make operator"
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", "admin@localhost", password)
    note = BASE_DIR / "var" / "admin-password.txt"
    note.write_text(password + "\n")
    note.chmod(0o600)
    return f"first start: created operator 'admin' with password {password} (also in var/admin-password.txt)"


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


def _wait_healthy(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.3)
    return False


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
    web = subprocess.Popen([python, *gunicorn_args(port)], cwd=BASE_DIR, env=env)
    worker_env = dict(env)
    if settings.WORKER_METRICS_PORT and not worker_env.get("PROMETHEUS_MULTIPROC_DIR"):
        # the worker's own /metrics (docs/ops.md) needs a folder its processes write to
        worker_env["PROMETHEUS_MULTIPROC_DIR"] = str(BASE_DIR / "var" / "prometheus-worker")
    worker = subprocess.Popen([python, "manage.py", "run_worker"], cwd=BASE_DIR, env=worker_env)
    procs = [web, worker]

    def stop(*_):
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            from django.db import connections

            from agent_project.lib.embedded_pg import other_clients, stop_server

            connections.close_all()
            # Stop what this run started, and a server a one-off manage.py command left behind;
            # leave it alone while another process (a second `make run`, a shell) still uses it.
            if embedded.started_here or other_clients(embedded) == 0:
                stop_server(embedded.pgdata)
                print("Stopped the embedded PostgreSQL.", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if not _wait_healthy(f"http://127.0.0.1:{port}/health", procs):
            print("The server did not become healthy; see the log above.", file=sys.stderr)
            stop()
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
Ctrl-C stops everything.
""",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("A child process exited; stopping.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
