"""Fixtures of the hardening tests (rate limiting's ``ratelimited`` and ``redis_url`` are in the root conftest)."""

from __future__ import annotations

import pytest


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
