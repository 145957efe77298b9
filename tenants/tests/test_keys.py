from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_scopes import scopes_disabled

from conftest import assert_error
from tenants import keys
from tenants.models import ApiKey
from tenants.services import api_key_create, api_key_revoke, api_key_rotate

SETTINGS = "/tenants/{}/settings"


def test_key_material_is_never_stored(tenant_a):
    plaintext = tenant_a.test_key
    assert plaintext.startswith("sk_live_") and len(plaintext) == 48
    with connection.cursor() as cur:
        cur.execute("SELECT * FROM tenants_apikey")
        rows = cur.fetchall()
    flat = " ".join(str(v) for row in rows for v in row)
    assert plaintext not in flat
    assert plaintext[:16] in flat  # only the lookup prefix is in clear
    with scopes_disabled():
        stored = ApiKey.objects.get(tenant=tenant_a)
    assert stored.key_hash == keys.key_hash(plaintext) != plaintext


def test_a_key_authenticates_and_records_last_use(tenant_a, client_a):
    assert client_a.get(SETTINGS.format("tenant-a")).status_code == 200
    with scopes_disabled():
        assert ApiKey.objects.get(tenant=tenant_a).last_used_at is not None


@pytest.mark.parametrize("header,code", [
    (None, "not_authenticated"),
    ("sk_live_nope", "invalid_api_key"),
    ("sk_live_" + "x" * 40, "invalid_api_key"),
])
def test_missing_or_wrong_key_is_401(tenant_a, api_client, header, code):
    response = api_client(header).get(SETTINGS.format("tenant-a"))
    assert_error(response, 401, code)
    assert "WWW-Authenticate" in response


def test_a_key_with_the_right_prefix_but_wrong_secret_is_refused(tenant_a, api_client):
    forged = tenant_a.test_key[:16] + "A" * 32
    assert_error(api_client(forged).get(SETTINGS.format("tenant-a")), 401, "invalid_api_key")


def test_revoked_key_is_refused(tenant_a, client_a):
    with scopes_disabled():
        api_key_revoke(api_key=ApiKey.objects.get(tenant=tenant_a))
    assert_error(client_a.get(SETTINGS.format("tenant-a")), 401, "api_key_revoked")


def test_expired_key_is_refused(tenant_a, api_client):
    key, plaintext = api_key_create(tenant=tenant_a, name="short", expires_at=timezone.now() + timedelta(minutes=5))
    client = api_client(plaintext)
    assert client.get(SETTINGS.format("tenant-a")).status_code == 200
    with scopes_disabled():
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(client.get(SETTINGS.format("tenant-a")), 401, "api_key_expired")


def test_rotation_with_grace_keeps_both_keys_working_then_only_the_new(tenant_a, api_client):
    with scopes_disabled():
        old = ApiKey.objects.get(tenant=tenant_a)
    new, plaintext = api_key_rotate(api_key=old, grace=timedelta(hours=1))
    assert new.name == old.name and new.prefix != old.prefix
    assert api_client(tenant_a.test_key).get(SETTINGS.format("tenant-a")).status_code == 200
    assert api_client(plaintext).get(SETTINGS.format("tenant-a")).status_code == 200
    with scopes_disabled():
        ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(api_client(tenant_a.test_key).get(SETTINGS.format("tenant-a")), 401, "api_key_expired")
    assert api_client(plaintext).get(SETTINGS.format("tenant-a")).status_code == 200


def test_rotation_without_grace_revokes_at_once(tenant_a, api_client):
    with scopes_disabled():
        old = ApiKey.objects.get(tenant=tenant_a)
    _, plaintext = api_key_rotate(api_key=old, grace=timedelta(0))
    assert_error(api_client(tenant_a.test_key).get(SETTINGS.format("tenant-a")), 401, "api_key_revoked")
    assert api_client(plaintext).get(SETTINGS.format("tenant-a")).status_code == 200


def test_several_keys_per_tenant(tenant_a, api_client):
    _, second = api_key_create(tenant=tenant_a, name="bridge")
    for key in (tenant_a.test_key, second):
        assert api_client(key).get(SETTINGS.format("tenant-a")).status_code == 200
    body = api_client(second).get(SETTINGS.format("tenant-a")).json()
    assert {k["name"] for k in body["api_keys"]} == {"primary", "bridge"}
    assert all(set(k) >= {"prefix", "state", "created_at", "last_used_at", "expires_at"} for k in body["api_keys"])


def test_disabled_tenant_key_is_refused(tenant_a, client_a):
    tenant_a.is_active = False
    tenant_a.save()
    assert_error(client_a.get(SETTINGS.format("tenant-a")), 403, "tenant_disabled")


def test_api_key_queries_outside_a_scope_raise(tenant_a):
    from django_scopes import ScopeError

    with pytest.raises(ScopeError):
        list(ApiKey.objects.all())
