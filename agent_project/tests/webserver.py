"""A real gunicorn for tests of what only a real server shows (its own error pages, its
headers, its listening address): started on the test database with the given arguments,
stopped by the caller. Tests that use it run with a transactional database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from agent_project.testing.procs import free_port
from followups.tests.support import BASE_DIR, database_env

__all__ = ["CONF", "Gunicorn", "child_env", "free_port"]

CONF = ["-c", "agent_project/gunicorn_conf.py"]


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_VERSION", "HOST")}
    env.update({**database_env(), "DJANGO_SETTINGS_MODULE": "agent_project.settings", "HF_HUB_OFFLINE": "1",
                "WARM_UP": "0", "WEB_CONCURRENCY": "1", "WEB_THREADS": "2", **extra})
    return env


class Gunicorn:
    def __init__(self, args: list[str], *, port: int, env: dict, log_path: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *args], cwd=BASE_DIR, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5):
                    return
            except urllib.error.HTTPError:  # 503: it serves, but no task worker has beaten (none runs here)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()
