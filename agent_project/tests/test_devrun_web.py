"""``make run``'s web server, started with the exact command line ``agent_project.devrun``
uses: it listens on 127.0.0.1 unless HOST says otherwise (/metrics and the admin are open in
debug), and each request is one log line, masked (gunicorn's access log printed a key sent
as ``?api_key=`` and e-mails and phones in full)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from agent_project import devrun
from agent_project.tests.webserver import Gunicorn, child_env, free_port

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "dev_Q8fX2kLz7RmW4tXc9VbJ3hYp6GsD1aEu"


def _listening(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def web(tmp_path):
    port = free_port()
    env = child_env(API_KEY=KEY, DEBUG="true")  # HOST unset, as a plain `make run`
    server = Gunicorn(devrun.gunicorn_args(port)[2:], port=port, env=env, log_path=tmp_path / "web.log")
    yield server
    server.stop()


def test_make_run_listens_on_loopback_and_logs_each_request_once_masked(web):
    port = web.port
    assert _listening(port) == {"0100007F"}  # 127.0.0.1 only, no 0.0.0.0 and no IPv6 wildcard
    _get(f"http://127.0.0.1:{port}/health?api_key={KEY}")
    assert _get(f"http://127.0.0.1:{port}/contacts?api_key={KEY}&q=budi%40example.com&phone=%2B6281234567890") == 401
    time.sleep(0.5)
    output = web.output()
    requests = [line for line in output.splitlines() if '"event": "request"' in line]
    assert len(requests) == 3, output[-3000:]  # the readiness probe and the two above: one line each
    assert KEY not in output and "budi@example.com" not in output and "6281234567890" not in output, output[-3000:]
    assert "api_key=****" in requests[-1]
