"""Fixtures shared by every app's tests: two tenants (A and B), their keys, the
global key, and API clients for each; rate limiting switched on, and a Redis. Tests run on the embedded PostgreSQL
(var/pg-test), in their own database per test run."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

GLOBAL_KEY = "test-global-key-0123456789abcdefghijklmnop"


@pytest.fixture(scope="session", autouse=True)
def _close_search_connections(django_db_setup):
    """The knowledge search's second connections (knowledge.db.send_beside) close before
    the test database is dropped (set up after it, so torn down first)."""
    yield
    from knowledge.db import close_beside_connections

    close_beside_connections()


@pytest.fixture(autouse=True)
def _global_key(settings):
    settings.API_KEY = GLOBAL_KEY


@pytest.fixture(autouse=True)
def _redis_counters_per_test():
    """With REDIS_URL (CI), the rate-limit and failed-login counters live in Redis, which a test's rolled-back
    transaction does not clean: each test's are deleted after it, as the database's are rolled back."""
    yield
    from django.conf import settings

    if settings.REDIS_URL:
        from redis import RedisError

        from agent_project.lib.ratelimit import get_store

        store = get_store()
        try:
            names = list(store.redis.scan_iter(match=f"{store.prefix}*", count=1000))
            if names:
                store.redis.delete(*names)
        except RedisError:  # a test pointed REDIS_URL at a Redis that is not there (its settings not yet restored)
            pass


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """The outbound client resolves names here, never off the machine (add names with ``fake_dns.add``)."""
    from agent_project.lib import outbound
    from agent_project.testing.fakedns import FakeDNS

    dns = FakeDNS()
    monkeypatch.setattr(outbound, "resolver", dns)
    return dns


@pytest.fixture
def make_tenant(db):
    from tenants.services import tenant_upsert

    def make(tenant_id: str, **data):
        tenant, _, key = tenant_upsert(tenant_id=tenant_id, data={"name": tenant_id.title(), **data}, may_create=True)
        tenant.test_key = key  # plaintext, for the tests' clients
        return tenant

    return make


@pytest.fixture
def tenant_a(make_tenant):
    return make_tenant("tenant-a", persona="Kamu asisten Toko A.")


@pytest.fixture
def tenant_b(make_tenant):
    return make_tenant("tenant-b", persona="Kamu asisten Toko B.")


def _client(key: str | None, tenant_id: str | None = None):
    from rest_framework.test import APIClient

    client = APIClient()
    headers = {}
    if key:
        headers["HTTP_X_API_KEY"] = key
    if tenant_id:
        headers["HTTP_X_TENANT_ID"] = tenant_id
    client.credentials(**headers)
    return client


@pytest.fixture
def client_a(tenant_a):
    return _client(tenant_a.test_key)


@pytest.fixture
def client_b(tenant_b):
    return _client(tenant_b.test_key)


@pytest.fixture
def global_client(db):
    return _client(GLOBAL_KEY)


@pytest.fixture
def anon_client(db):
    return _client(None)


@pytest.fixture
def api_client(db):
    """Build a client for any key / X-Tenant-Id: ``api_client(key, tenant_id)``."""
    return _client


@pytest.fixture
def operator(db):
    """A test client logged in to the admin as a superuser (modules with their own ``operator`` keep it)."""
    from django.contrib.auth.models import User
    from django.test import Client

    User.objects.create_superuser("op", "op@example.com", "pw-123456789")
    client = Client()
    client.login(username="op", password="pw-123456789")
    return client


@pytest.fixture
def scoped():
    """``with scoped(tenant): Model.objects.filter(...)`` in test code."""
    from tenants.scoping import tenant_scope

    return tenant_scope


@pytest.fixture
def ratelimited(settings):
    """Rate limiting switched on, with counters no other test (or test run) shares."""
    import uuid

    from tenants import throttling

    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMIT_KEY_PREFIX = f"layan:rl:test-{uuid.uuid4().hex}:"
    throttling.tenant_limits_forget()
    yield settings
    throttling.tenant_limits_forget()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The Redis the deployment would share: REDIS_URL when set (CI), otherwise a
    private redis-server started for this test session."""
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


def staff_client(*perms: str, username: str = ""):
    """A test client of a new staff user holding only the given ``app_label.codename`` permissions;
    it answers 500 instead of raising, so a test can assert the status."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    username = username or f"staff{User.objects.count()}"
    user = User.objects.create_user(username, f"{username}@example.com", "pw-123456789", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def super_client(username: str = "root"):
    """A superuser's test client that answers 500 instead of raising."""
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_superuser(username, f"{username}@example.com", "pw-123456789")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def assert_error(response, status: int, code: str | None = None):
    """The project's error shape: JSON ``{"error": {"code", "message", "details"}}``."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def pytest_configure(config):
    """One marker per need of agent_project/testing/needs.py (``@pytest.mark.corpus``, ``@pytest.mark.browser``)."""
    from agent_project.testing import needs

    unknown = needs.required() - set(needs.NEEDS)
    if unknown:
        raise pytest.UsageError(f"{needs.REQUIRE_ENV} names unknown needs: {', '.join(sorted(unknown))} "
                                f"(known: {', '.join(needs.NEEDS)}, all)")
    for need in needs.NEEDS.values():
        config.addinivalue_line("markers", f"{need.name}: needs {need.description}; skipped where it is missing")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test whose need is missing is skipped before its fixtures start (no database, no server for nothing)."""
    from agent_project.testing import needs

    needs.skip_unmet(item)


def pytest_terminal_summary(terminalreporter):
    from agent_project.testing import needs

    for line in needs.unmet_requirements():
        terminalreporter.write_line(f"FAILED (required need skipped) {line}", red=True, bold=True)


def pytest_sessionfinish(session, exitstatus):
    """Fail a run that skipped tests for a need ``LAYAN_REQUIRE_NEEDS`` requires (CI). Then stop the embedded
    test server when this run started it and nobody else uses it (CI leaves nothing running; a developer's
    concurrent runs keep theirs)."""
    from agent_project.testing import needs

    if needs.unmet_requirements() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

    from django.conf import settings

    embedded = getattr(settings, "EMBEDDED_PG", None)
    if embedded is None or not embedded.started_here or hasattr(session.config, "workerinput"):
        return
    from django.db import connections

    from agent_project.lib.embedded_pg import other_clients, stop_server

    connections.close_all()
    if other_clients(embedded) == 0:
        stop_server(embedded.pgdata)
