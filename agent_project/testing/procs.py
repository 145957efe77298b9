"""Real processes for fault tests: a second embedded PostgreSQL, gunicorn or ``make run`` started as in production,
and a plain HTTP client that reports any answer (a 503 is what those tests look for, not an exception).

Children run like production: pytest's variables are removed, so they use the data folder, queue names and limits
a deployment would, on the server the test gives them (``EMBEDDED_PG_DIR``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(**overrides: str) -> dict[str, str]:
    """This environment without pytest's markers (the settings would pick the test data folder and queue), plus
    quiet, offline defaults that keep a child's start short (no model loaded before the first request)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({"DJANGO_SETTINGS_MODULE": "agent_project.settings", "HF_HUB_OFFLINE": "1", "WARM_UP": "0",
                "EMBEDDING_PROVIDER": "fake", "LLM_PROVIDER": "offline", "LOG_LEVEL": "WARNING",
                # counters of its own in a shared Redis (CI's): other tests' children use the same tenant ids
                "RATE_LIMIT_KEY_PREFIX": f"layan:rl:child-{uuid.uuid4().hex}:"})
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    """``manage.py <args>`` in a child process; its output, or an AssertionError with it."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def http(method: str, url: str, body: dict | None = None, *, headers: dict | None = None,
         timeout: float = 30) -> Answer:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**({"Content-Type": "application/json"} if data else {}),
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def wait_until(predicate, *, timeout: float, what: str, procs=(), interval: float = 0.2):
    """Poll until ``predicate()`` is truthy (exceptions count as not yet). The limit only keeps a broken run from
    hanging; nothing asserts how long it took. A watched process that exits fails the wait at once."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not ready yet; shown if it never gets there
            last = exc
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{what}: the process {proc.args} exited with {proc.returncode}")
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def stop_group(proc: subprocess.Popen, *, grace: float = 20) -> None:
    """SIGTERM to a child started with ``start_new_session=True`` and everything it started; SIGKILL after
    ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group (a child that ignored SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


# --- the process tree, from /proc (Linux) ------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    try:
        text = " ".join(p.read_text() for p in Path(f"/proc/{pid}/task").glob("*/children"))
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(x) for x in text.split()]


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""
