"""The API's rate limits (tenants.throttling over agent_project.lib.ratelimit): the 429
answer, per-tenant overrides and scopes, and one limit enforced across two processes
sharing Redis (and the database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings as django_settings
from django.db import connection

from agent_project.lib import ratelimit
from agent_project.lib.ratelimit import window_of
from conftest import assert_error
from tenants import throttling
from tenants.models import ApiKey, Tenant

ROOT = Path(__file__).resolve().parents[2]


# --- through the API ----------------------------------------------------------------

def _limit(tenant, **fields):
    Tenant.objects.filter(pk=tenant.pk).update(**fields)
    throttling.tenant_limits_forget()


def test_over_the_limit_answers_429_json_with_headers(ratelimited, tenant_a, client_a):
    _limit(tenant_a, rate_limit_per_minute=3)
    remaining = []
    for _ in range(3):
        r = client_a.get("/tenants/tenant-a/settings")
        assert r.status_code == 200
        assert r["X-RateLimit-Limit"] == "3"
        remaining.append(r["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    r = client_a.get("/tenants/tenant-a/settings")
    error = assert_error(r, 429, "rate_limited")
    assert int(r["Retry-After"]) >= 1
    assert (r["X-RateLimit-Limit"], r["X-RateLimit-Remaining"]) == ("3", "0")
    assert int(r["X-RateLimit-Reset"]) == int(r["Retry-After"])
    assert error["details"]["limit_per_minute"] == 3 and error["details"]["scope"] == "default"


def test_default_limit_applies_without_a_tenant_override(ratelimited, tenant_b, client_b):
    ratelimited.RATE_LIMIT_DEFAULT_PER_MINUTE = 2
    assert [client_b.get("/tenants/tenant-b/settings").status_code for _ in range(3)] == [200, 200, 429]


def test_one_tenant_over_its_limit_leaves_another_alone(ratelimited, tenant_a, tenant_b, client_a, client_b):
    _limit(tenant_a, rate_limit_per_minute=1)
    assert [client_a.get("/tenants/tenant-a/settings").status_code for _ in range(2)] == [200, 429]
    assert client_b.get("/tenants/tenant-b/settings").status_code == 200


def test_all_keys_of_a_tenant_share_its_budget(ratelimited, tenant_a, client_a, api_client):
    from tenants.services import api_key_create

    _limit(tenant_a, rate_limit_per_minute=2)
    _, second_key = api_key_create(tenant=tenant_a, name="second")
    second = api_client(second_key)
    assert client_a.get("/tenants/tenant-a/settings").status_code == 200
    assert second.get("/tenants/tenant-a/settings").status_code == 200
    r = second.get("/tenants/tenant-a/settings")
    assert assert_error(r, 429, "rate_limited")["details"]["bucket"] == "tenant"


def test_global_key_spends_the_named_tenants_budget(ratelimited, tenant_a, client_a, global_client):
    _limit(tenant_a, rate_limit_per_minute=2)
    global_client.credentials(HTTP_X_API_KEY=django_settings.API_KEY, HTTP_X_TENANT_ID="tenant-a")
    assert global_client.get("/tenants/tenant-a/settings").status_code == 200
    assert global_client.get("/tenants/tenant-a/settings").status_code == 200
    assert_error(client_a.get("/tenants/tenant-a/settings"), 429, "rate_limited")


def test_global_key_budget_of_its_own(ratelimited, tenant_a, tenant_b, global_client):
    ratelimited.RATE_LIMIT_GLOBAL_KEY_PER_MINUTE = 2
    codes = [global_client.get(f"/tenants/{t}/settings").status_code for t in ("tenant-a", "tenant-b", "tenant-a")]
    assert codes == [200, 200, 429]


@pytest.mark.urls("tenants.tests.urls_scoped")
@pytest.mark.parametrize("scope, field", [("chat", "chat_rate_limit_per_minute"),
                                          ("upload", "upload_rate_limit_per_minute")])
def test_chat_and_upload_scopes_have_their_own_stricter_limit(ratelimited, tenant_a, client_a, scope, field):
    _limit(tenant_a, rate_limit_per_minute=50, **{field: 2})
    path = f"/scoped-test/{scope}"
    assert [client_a.post(path, {}, format="json").status_code for _ in range(2)] == [200, 200]
    error = assert_error(client_a.post(path, {}, format="json"), 429, "rate_limited")
    assert error["details"]["scope"] == scope and error["details"]["limit_per_minute"] == 2
    # The default scope is a separate budget: ordinary routes still answer.
    assert client_a.get("/tenants/tenant-a/settings").status_code == 200


@pytest.mark.urls("tenants.tests.urls_scoped")
def test_scope_defaults_come_from_settings(ratelimited, tenant_a, client_a):
    ratelimited.RATE_LIMIT_CHAT_PER_MINUTE = 1
    assert [client_a.post("/scoped-test/chat", {}, format="json").status_code for _ in range(2)] == [200, 429]


def test_refused_requests_do_not_eat_the_budget(ratelimited, tenant_a, client_a):
    _limit(tenant_a, rate_limit_per_minute=2)
    for _ in range(2):
        client_a.get("/tenants/tenant-a/settings")
    for _ in range(5):
        assert client_a.get("/tenants/tenant-a/settings").status_code == 429
    store = ratelimit.get_store()
    window, _ = window_of(time.time())
    key_id = ApiKey.objects.with_scope(tenant=tenant_a).get().pk
    counts = store.hit(["tenant:tenant-a:default", f"key:{key_id}:default"], window)
    # Two admitted plus this probe: the five refusals were taken back out (a boundary may move them to "previous").
    assert all(prev + cur == 3 for prev, cur in counts.values()), counts


def test_unauthenticated_and_health_are_not_counted(ratelimited, anon_client):
    ratelimited.RATE_LIMIT_DEFAULT_PER_MINUTE = 1
    assert [anon_client.get("/health").status_code == 429 for _ in range(3)] == [False] * 3
    assert_error(anon_client.get("/tenants/x/settings"), 401)


def test_an_unreachable_redis_fails_open(ratelimited, tenant_a, client_a, caplog):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ratelimited.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    _limit(tenant_a, rate_limit_per_minute=1)
    assert [client_a.get("/tenants/tenant-a/settings").status_code for _ in range(2)] == [200, 200]
    assert "Rate-limit store unavailable" in caplog.text


def test_disabled_means_no_limit_and_no_headers(settings, tenant_a, client_a):
    settings.RATE_LIMIT_ENABLED = False
    settings.RATE_LIMIT_DEFAULT_PER_MINUTE = 1
    responses = [client_a.get("/tenants/tenant-a/settings") for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3
    assert "X-RateLimit-Limit" not in responses[0]


# --- across processes -----------------------------------------------------------------

def _child_env(store: str, redis_url: str, prefix: str, key: str) -> dict:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="agent_project.settings", RATE_LIMIT_ENABLED="true",
               RATE_LIMIT_KEY_PREFIX=prefix, RL_TEST_KEY=key, API_KEY=django_settings.API_KEY,
               REDIS_URL=redis_url if store == "redis" else "", RATE_LIMIT_DEFAULT_PER_MINUTE="1000")
    name = connection.settings_dict["NAME"]
    if django_settings.EMBEDDED_PG is not None:
        env.update(EMBEDDED_PG_DIR=str(django_settings.EMBEDDED_PG_DIR), EMBEDDED_PG_DATABASE=name)
    else:
        env["DATABASE_URL"] = urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()
    return env


def _start(env, count, path):
    proc = subprocess.Popen([sys.executable, "-m", "tenants.tests.ratelimit_client", str(count), path],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _run(proc) -> list[dict]:
    out, _ = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("store", ["redis", "database"])
def test_two_processes_enforce_one_limit(store, ratelimited, make_tenant, request):
    """Two web processes, one limit of 10 per minute: the first spends 6, so the
    second, which alone would have had 10, gets 4 and then 429s."""
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else ""
    tenant = make_tenant("rl-proc")
    Tenant.objects.filter(pk=tenant.pk).update(rate_limit_per_minute=10)
    path = f"/tenants/{tenant.pk}/settings"
    env = _child_env(store, redis_url, ratelimited.RATE_LIMIT_KEY_PREFIX, tenant.test_key)
    first, second = _start(env, 6, path), _start(env, 10, path)  # both alive at once
    answers_first = _run(first)
    answers_second = _run(second)
    assert [a["status"] for a in answers_first] == [200] * 6
    assert [a["status"] for a in answers_second] == [200] * 4 + [429] * 6
    refused = answers_second[-1]
    assert refused["body"]["error"]["code"] == "rate_limited"
    assert refused["headers"]["X-RateLimit-Limit"] == "10" and refused["headers"]["X-RateLimit-Remaining"] == "0"
    assert int(refused["headers"]["Retry-After"]) >= 1


@pytest.mark.parametrize("path, scope", [("/chat", "chat"), ("/kb/upload", "upload")])
def test_the_real_routes_use_their_stricter_scope(path, scope):
    from django.urls import resolve

    assert resolve(path).func.view_class.throttle_scope == scope
