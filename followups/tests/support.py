"""Test helpers: a local webhook receiver, a local fake of the Gemini API, and real
django-q2 clusters (``manage.py qcluster`` subprocesses) pointed at the test database."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from agent_project.testing.fakehttp import FakeHTTPServer, Request, Response

BASE_DIR = Path(__file__).resolve().parents[2]


@dataclass
class Delivery:
    key: str
    headers: dict
    body: bytes
    payload: dict
    signature_ok: bool
    received_at: float = 0.0  # wall clock (time.time()), to measure delivery delay


@dataclass
class Receiver:
    """A tenant's webhook endpoint on 127.0.0.1. ``respond(delivery, n)`` chooses the answer
    for the n-th delivery (1-based) of one idempotency key: ``(status, headers, body)``."""

    secret: str = ""
    respond: object = None
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: FakeHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/layan"

    def keys(self) -> Counter:
        with self.lock:
            return Counter(d.key for d in self.deliveries)

    def first_seen(self) -> dict[str, Delivery]:
        """What a receiver deduplicating by idempotency key would process."""
        with self.lock:
            seen: dict[str, Delivery] = {}
            for d in self.deliveries:
                seen.setdefault(d.key, d)
            return seen

    def answer(self, request: Request) -> Response:
        payload = request.body if request.body is not None else {}
        delivery = Delivery(request.headers.get("Idempotency-Key", ""), request.headers, request.raw, payload,
                            verify(self.secret, request.headers, request.raw), time.time())
        with self.lock:
            self.deliveries.append(delivery)
            n = sum(1 for d in self.deliveries if d.key == delivery.key)
        status, extra, text = self.respond(delivery, n) if self.respond else (200, {}, b'{"ok":true}')
        return Response(status, raw=text, headers=extra)


def verify(secret: str, headers: dict, body: bytes) -> bool:
    """Checked here independently of followups.senders: HMAC-SHA256 over "<timestamp>." + body."""
    timestamp = headers.get("X-Layan-Timestamp", "")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return bool(timestamp) and hmac.compare_digest(expected, headers.get("X-Layan-Signature", ""))


def start_receiver(secret: str, respond=None) -> Receiver:
    receiver = Receiver(secret=secret, respond=respond)
    receiver.server = FakeHTTPServer(receiver.answer).start()
    return receiver


def stop_server(server: FakeHTTPServer) -> None:
    server.stop()


@dataclass
class FakeGemini:
    """Answers ``POST /v1beta/models/{model}:generateContent`` with a body shaped like
    Gemini's documented GenerateContentResponse, and records what it was asked."""

    text: str
    server: FakeHTTPServer | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[dict]:
        return [{"path": r.target, "body": r.body or {}} for r in self.server.requests]

    def answer(self, request: Request) -> Response:
        return Response(body={
            "candidates": [{"content": {"role": "model", "parts": [{"text": self.text}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 24, "totalTokenCount": 144},
            "modelVersion": "gemini-2.5-flash",
        })


def start_fake_gemini(text: str) -> FakeGemini:
    fake = FakeGemini(text=text)
    fake.server = FakeHTTPServer(fake.answer).start()
    return fake


def database_env() -> dict:
    """Environment that points a child process at the database this process uses right now
    (the test database during tests): the same embedded server, or the same DATABASE_URL server."""
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    # a child's rate-limit and failure counters of its own in a shared Redis (CI's): other children use the same ids
    counters = {"RATE_LIMIT_KEY_PREFIX": f"{settings.RATE_LIMIT_KEY_PREFIX}child-{uuid.uuid4().hex}:"}
    if settings.EMBEDDED_PG is not None:
        return {"EMBEDDED_PG_DIR": str(settings.EMBEDDED_PG.pgdata), "EMBEDDED_PG_DATABASE": s["NAME"], **counters}
    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s.get("PASSWORD") else "")
    host = (s["HOST"] or "") + (f":{s['PORT']}" if s.get("PORT") else "")
    return {"DATABASE_URL": f"postgres://{auth}@{host}/{s['NAME']}", **counters}


class Cluster:
    """One ``manage.py qcluster`` process on the test database. It takes the queue name of this
    process (``Q_CLUSTER["name"]``, unique per test run, so runs sharing a Redis never take each
    other's tasks; it is also the salt task packages are signed with, so both sides must agree)."""

    def __init__(self, *, label: str, workers: int = 1, env: dict | None = None, log_dir: Path | None = None,
                 command: str = "qcluster"):
        from django.conf import settings

        self.label = label
        self.queue = settings.Q_CLUSTER["name"]
        child_env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}  # run like production
        child_env.update({
            **database_env(),
            "Q_CLUSTER_NAME": self.queue,
            "Q_WORKERS": str(workers),
            "DJANGO_SETTINGS_MODULE": "agent_project.settings",
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "WARNING",
            "CONN_MAX_AGE": "0",
            # the local receivers this test opened to the outbound client (hooked)
            "OUTBOUND_ALLOWED_PRIVATE_HOSTS": ",".join(settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS),
            **(env or {}),
        })
        self.log = open(log_dir / f"qcluster-{label}-{uuid.uuid4().hex[:6]}.log", "w+") if log_dir else None
        self.proc = subprocess.Popen([sys.executable, "manage.py", command], cwd=BASE_DIR, env=child_env,
                                     stdout=self.log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        if not self.log:
            return ""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def kill(self) -> None:
        """A worker dying mid-send: SIGKILL the whole cluster (its process group), no clean-up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """Ask the cluster to stop (SIGTERM to its main process only: it stops its own children)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            # Its workers, pusher and monitor stop within a second or two; the sentinel then
            # waits for a status report (up to Q_TIMEOUT) that need not be awaited here.
            self.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.log:
            self.log.close()


def stop_all(clusters) -> None:
    for c in clusters:
        c.terminate()
    for c in clusters:
        c.stop()


def enqueue(func: str, *args, **kwargs) -> str:
    """Put a task on this run's queue, through the configured broker (ORM or Redis)."""
    from django_q.tasks import async_task

    return async_task(func, *args, **kwargs)


def wait_for(predicate, *, timeout: float, interval: float = 0.25, clusters=(), what: str = "condition"):
    """Poll until ``predicate()`` is truthy. The limit only keeps a broken run from hanging:
    it is generous and nothing here asserts on how long things took."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for c in clusters:
            if c.proc.poll() is not None:
                raise AssertionError(f"qcluster {c.label} exited early:\n{c.output()}")
        time.sleep(interval)
    logs = "\n".join(c.output() for c in clusters)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def wait_clusters_ready(clusters, *, timeout: float = 120) -> None:
    """The clusters ran a trivial task each: then they are surely taking work."""
    from django_q.models import Task

    name = f"ready-{uuid.uuid4().hex[:8]}"
    for _ in clusters:
        enqueue("math.floor", 1.5, task_name=name)
    wait_for(lambda: Task.objects.filter(name=name).count() >= len(clusters), timeout=timeout,
             clusters=clusters, what="clusters to start")
