"""With DEBUG=false behind a TLS proxy: HSTS and a Content-Security-Policy, and the admin
login page and /api/docs still work under that policy in a real browser (headless Chromium
against a real gunicorn serving collected static files, as the container does)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest

from agent_project.testing.needs import chromium_path
from agent_project.tests.webserver import CONF, Gunicorn, child_env, free_port
from conversations.tests.test_playground import CHROMIUM_ARGS
from followups.tests.support import BASE_DIR

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def production(tmp_path_factory, django_db_blocker):
    folder = tmp_path_factory.mktemp("prod")
    with django_db_blocker.unblock():
        env = child_env(DEBUG="false", SECRET_KEY="a-production-like-secret-key-for-this-test-0123456789",
                        STATIC_ROOT=str(folder / "static"), WEB_THREADS="4")
    # the container's way: static files collected, served by WhiteNoise from STATIC_ROOT
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env,
                   check=True, timeout=300)
    port = free_port()
    web = Gunicorn([*CONF, "--bind", f"127.0.0.1:{port}", "agent_project.wsgi"], port=port, env=env,
                   log_path=folder / "gunicorn.log")
    yield web.url
    web.stop()


def _headers(url: str, **headers) -> dict:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as answered:  # /health: 503 while no task worker has beaten
        return {k.lower(): v for k, v in answered.headers.items()}


def test_hsts_behind_the_tls_proxy_and_a_csp_everywhere(production):
    behind_tls = _headers(f"{production}/admin/login/", **{"X-Forwarded-Proto": "https"})
    assert behind_tls["strict-transport-security"] == "max-age=31536000"
    policy = behind_tls["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    plain = _headers(f"{production}/health")
    assert "strict-transport-security" not in plain  # only on https (the proxy said so)
    assert plain["content-security-policy"] == policy


@pytest.mark.browser
def test_the_admin_login_and_the_api_docs_work_under_the_policy(production, monkeypatch):
    from playwright.sync_api import sync_playwright

    violations, failures = [], []
    with tempfile.TemporaryDirectory(prefix="layan-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=chromium_path(), headless=True,
                                                        args=CHROMIUM_ARGS)
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("pageerror", lambda e: failures.append(str(e)))
            page.goto(f"{production}/admin/login/")
            assert page.locator("#id_username").is_visible() and page.locator("#id_password").is_visible()
            assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") != "none"
            page.goto(f"{production}/api/docs")
            page.wait_for_selector(".swagger-ui .opblock-tag")  # Swagger UI ran and read the schema
            assert "Layan API" in page.locator(".swagger-ui .title").inner_text()
        finally:
            context.close()
    assert violations == [] and failures == [], (violations, failures)
