"""Fixtures of the hardening tests."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def ratelimited(settings):
    """Rate limiting switched on, with counters no other test (or test run) shares."""
    from agent_project.lib import ratelimit

    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMIT_KEY_PREFIX = f"layan:rl:test-{uuid.uuid4().hex}:"
    ratelimit.tenant_limits_forget()
    yield settings
    ratelimit.tenant_limits_forget()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The Redis the deployment would share: REDIS_URL when set (CI), otherwise a
    private redis-server started for this test session."""
    import os
    import shutil
    import socket
    import subprocess
    import time

    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    assert binary, "These tests need Redis: set REDIS_URL or install redis-server."
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def pg_folder():
    """A data folder for an embedded PostgreSQL of the test's own, outside pytest's temporary tree: run as root,
    the server runs as the unprivileged user 'pgserver', and every pytest session that starts (a concurrent run,
    a test's child run) sets /tmp/pytest-of-root back to mode 0700, cutting a running server off its folder.
    The server is stopped and the folder removed afterwards."""
    import shutil
    import tempfile
    from pathlib import Path

    from agent_project.lib.embedded_pg import stop_server

    parent = Path(tempfile.mkdtemp(prefix="layan-pg-"))
    try:
        yield parent / "pg"
    finally:
        stop_server(parent / "pg")
        shutil.rmtree(parent, ignore_errors=True)
