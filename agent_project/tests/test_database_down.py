"""The database goes away under a running web server, and comes back.

A second embedded PostgreSQL, started for this test, serves a real gunicorn (as ``make run`` starts it). While
requests keep coming it is stopped: every route answers ``503 database_unavailable`` in the JSON error shape with
``Retry-After`` (it answered ``500 internal_error``); started again, every route answers 200 at once, also when
it was restarted between two requests (every thread's connection stale, none of them noticed yet)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode

import pytest

from agent_project.lib.embedded_pg import ensure_server, stop_server
from agent_project.testing.procs import ROOT, free_port, http, manage, production_env, stop_group, wait_until

pytestmark = pytest.mark.slow

GLOBAL = "fault-test-global-key-0123456789abcdef"
ROUTES = [
    ("GET", "/tenants/toko/settings", None),
    ("GET", "/contacts", None),
    ("POST", "/contacts", {"name": "Budi", "email": "budi@example.com"}),
    ("POST", "/kb/search", {"query": "jam buka toko"}),
    ("GET", "/kb/documents", None),
    ("POST", "/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "Jam buka toko kapan?"}]}),
    ("GET", "/conversations", None),
]


@pytest.fixture
def second_server(pg_folder):
    ensure_server(pg_folder)
    return pg_folder


def _is_503_json(answer) -> bool:
    if answer.status != 503 or not answer.headers.get("Content-Type", "").startswith("application/json"):
        return False
    error = answer.json()["error"]
    return error["code"] == "database_unavailable" and error["message"] and int(answer.headers["Retry-After"]) > 0


def _admin_login(base: str) -> tuple[int, str, str]:
    """An operator logs in to the admin (a form, outside the API): status, Content-Type, Retry-After."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(f"{base}/admin/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urlencode({"csrfmiddlewaretoken": token, "username": "operator", "password": "wrong-password"}).encode()
    try:
        with opener.open(urllib.request.Request(f"{base}/admin/login/", data=form), timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.headers.get("Retry-After", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.headers.get("Retry-After", "")


def test_every_route_answers_503_json_while_the_database_is_down_and_200_once_it_is_back(second_server, tmp_path):
    env = production_env(EMBEDDED_PG_DIR=str(second_server), API_KEY=GLOBAL, CONN_MAX_AGE="600",
                         RATE_LIMIT_DEFAULT_PER_MINUTE="100000", RATE_LIMIT_CHAT_PER_MINUTE="100000")
    manage("migrate", "--noinput", env=env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "web.log", "w") as log:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "agent_project.wsgi", "-c",
                                "agent_project/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                                "--threads", "4"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_until(lambda: http("GET", f"{base}/health").json()["database"]["ok"], timeout=120,
                   what="gunicorn to serve", procs=[web])
        created = http("PUT", f"{base}/tenants/toko/settings", {"name": "Toko", "persona": "Asisten Toko."},
                       headers={"X-API-Key": GLOBAL})
        assert created.status == 201, created.body
        key = {"X-API-Key": created.json()["api_key"]}
        assert http("POST", f"{base}/kb/upsert", {"title": "Jam buka", "content": "Toko buka jam 9 pagi."},
                    headers=key).status in (200, 201)

        def call(method, path, body):
            return http(method, base + path, body, headers=key)

        for route in ROUTES:  # every route works, and every web thread holds a connection
            for _ in range(3):
                assert call(*route).status in (200, 201), route

        # Requests keep coming while the server stops and starts: each is answered 2xx or 503 JSON, never a 500.
        stop_load, answers = threading.Event(), []

        def load():
            while not stop_load.is_set():
                for route in ROUTES[:4]:
                    answers.append((route[1], call(*route)))

        loader = threading.Thread(target=load)
        loader.start()
        try:
            stop_server(second_server)
            for route in ROUTES:
                for _ in range(3):
                    answer = call(*route)
                    assert _is_503_json(answer), (route, answer.status, answer.body[:300])
            health = http("GET", f"{base}/health")
            assert health.status == 503 and health.json()["database"]["ok"] is False
            status, content_type, retry_after = _admin_login(base)
            assert (status, content_type.split(";")[0]) == (503, "text/plain") and int(retry_after) > 0

            ensure_server(second_server)
            assert _admin_login(base)[0] == 200  # the form again, with "wrong password"
            for route in ROUTES:  # stale connections are dropped, not handed to a request
                for _ in range(6):
                    answer = call(*route)
                    assert answer.status in (200, 201), (route, answer.status, answer.body[:300])
        finally:
            stop_load.set()
            loader.join()
        odd = [(path, a.status, a.body[:200]) for path, a in answers if a.status not in (200, 201) and not _is_503_json(a)]
        assert odd == [] and any(a.status == 503 for _, a in answers), odd

        # A restart between two requests: every thread's connection is stale and no request has noticed yet.
        stop_server(second_server)
        ensure_server(second_server)
        for route in ROUTES:
            for _ in range(6):
                answer = call(*route)
                assert answer.status in (200, 201), (route, answer.status, answer.body[:300])
        assert web.poll() is None  # the web server rode it out
    finally:
        stop_group(web)
