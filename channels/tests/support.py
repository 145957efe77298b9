"""Test helpers: posting webhooks as the platforms do, draining this test's django-q2
queue through the real broker, and a real ``manage.py qcluster`` for end-to-end runs."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from agent_project.testing.fakehttp import FakeHTTPServer, Response
from channels import whatsapp

BASE_DIR = Path(__file__).resolve().parents[2]


def post_whatsapp(client, tenant_id: str, payload: dict, *, app_secret: str | None, signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = {}
    if signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    elif app_secret is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = whatsapp.sign(app_secret=app_secret, body=body)
    return client.post(f"/channels/whatsapp/{tenant_id}/webhook", data=body, content_type="application/json",
                       **headers)


def post_telegram(client, tenant_id: str, update: dict, *, secret: str | None):
    headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret is not None else {}
    return client.post(f"/channels/telegram/{tenant_id}/webhook", data=json.dumps(update),
                       content_type="application/json", **headers)


class QueueProbe:
    """This test's own django-q2 queue, through the configured broker (ORM or Redis)."""

    def __init__(self, name: str, capture=None):
        self.name = name
        # pytest-django's django_capture_on_commit_callbacks: a test runs inside one transaction,
        # so what a task defers to "after commit" (enqueueing the next task) is run explicitly.
        self.capture = capture

    def broker(self):
        from django_q.brokers import get_broker

        return get_broker(self.name)

    def size(self) -> int:
        return self.broker().queue_size()

    def run_all(self) -> list:
        """Take each queued task off the broker and run it as a worker would: unsign the
        package, import the function, call it with its arguments, acknowledge."""
        from django_q.signing import SignedPackage

        broker, results = self.broker(), []
        while broker.queue_size():
            for ack_id, package in broker.dequeue() or []:
                task = SignedPackage.loads(package)
                module, name = task["func"].rsplit(".", 1)
                func = getattr(importlib.import_module(module), name)
                if self.capture is None:
                    results.append((task["func"], func(*task["args"], **task["kwargs"])))
                else:
                    with self.capture(execute=True):
                        results.append((task["func"], func(*task["args"], **task["kwargs"])))
                broker.acknowledge(ack_id)
        return results


def database_env() -> dict:
    """Environment that points a child process at the database this test uses: the embedded
    server's folder and the test database's name (or DATABASE_URL for a real server)."""
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    if settings.EMBEDDED_PG is not None:
        return {"EMBEDDED_PG_DIR": str(settings.EMBEDDED_PG_DIR), "EMBEDDED_PG_DATABASE": s["NAME"]}
    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s.get("PASSWORD") else "")
    return {"DATABASE_URL": f"postgres://{auth}@{s['HOST']}:{s.get('PORT') or 5432}/{s['NAME']}"}


class Cluster:
    """A real ``manage.py qcluster`` on the test database. Its queue is this test run's
    cluster name (``Q_CLUSTER["name"]``, unique per run): django-q2 also signs task
    packages with that name, so parent and child must agree on it."""

    def __init__(self, *, env: dict, log_path: Path):
        from django.conf import settings

        queue = settings.Q_CLUSTER["name"]
        child_env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
        child_env.pop("DATABASE_URL", None)
        child_env.update({**database_env(), "Q_CLUSTER_NAME": queue, "CHANNELS_Q_CLUSTER": "",
                          "Q_WORKERS": "1", "DJANGO_SETTINGS_MODULE": "agent_project.settings", "HF_HUB_OFFLINE": "1",
                          "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": "0",
                          "OUTBOUND_ALLOWED_PRIVATE_HOSTS": ",".join(settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS), **env})
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, env=child_env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def wait_for(predicate, *, timeout: float, cluster: Cluster | None = None, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; the limit only keeps a broken run from hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if cluster is not None and cluster.proc.poll() is not None:
            raise AssertionError(f"qcluster exited early:\n{cluster.output()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{cluster.output() if cluster else ''}")


class EventReceiver(FakeHTTPServer):
    """The tenant's own webhook endpoint on 127.0.0.1; answers ``status`` and keeps what came."""

    def __init__(self, status: int = 200):
        super().__init__(lambda request: Response(self.status))
        self.status = status
        self.start()

    @property
    def received(self) -> list[tuple[dict, bytes]]:
        return [(r.headers, r.raw) for r in self.requests]

    @property
    def url(self) -> str:
        return super().url + "/layan-events"


def signature_ok(secret: str, headers: dict, body: bytes) -> bool:
    """Checked independently of the code under test: HMAC-SHA256 over "<timestamp>." + body."""
    import hashlib
    import hmac

    timestamp = headers.get("X-Layan-Timestamp", "")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return bool(timestamp) and hmac.compare_digest(expected, headers.get("X-Layan-Signature", ""))
