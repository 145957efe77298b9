"""SSRF through the URLs a tenant sets, end to end: the tenant webhook refused when set
(422 url_not_allowed naming the rule) for every internal destination, checked again when a
follow-up or a handoff event is sent, and what the tenant reads back about a failed delivery
(a status class or a fixed reason, never the body or the socket error). Tool URLs are set
in the admin and refused there the same way. The internal service is a local fake on
127.0.0.1 holding a secret; names are answered by the tests' fake DNS."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django_scopes import scopes_disabled

from agent_project.testing.fakehttp import FakeHTTPServer, Response
from agent_project.tests.test_outbound import REFUSED, SECRET
from conftest import assert_error, super_client
from followups.dispatch import followups_dispatch
from followups.models import FollowUp
from tenants.models import Tenant

pytestmark = pytest.mark.django_db
SETTINGS = "/tenants/tenant-a/settings"


@pytest.fixture
def internal():
    server = FakeHTTPServer(lambda request: Response(404, raw=SECRET.encode())).start()
    yield server
    server.stop()


def _store_url(tenant, url):
    """A URL stored before the set-time check existed (or DNS changed since): the send must still refuse."""
    Tenant.objects.filter(pk=tenant.pk).update(webhook_url=url)
    tenant.refresh_from_db()
    return tenant


def _due_followup(tenant, make_contact, make_followup):
    return make_followup(tenant, make_contact(tenant))


def _dispatch():
    return followups_dispatch(window_seconds=60, watch=False, worker="w1")


@pytest.mark.parametrize("url, rule", REFUSED)
def test_a_tenant_cannot_set_an_internal_webhook(client_a, tenant_a, internal, fake_dns, url, rule):
    fake_dns.add("rebind.shop.test", "127.0.0.1")
    url = url.format(port=internal.port)
    error = assert_error(client_a.put(SETTINGS, {"webhook_url": url}, format="json"), 422, "url_not_allowed")
    assert error["details"] == {"field": "webhook_url", "rule": rule} and f"({rule})" in error["message"]
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_url == ""


def test_a_public_webhook_is_accepted_and_an_open_private_one_too(client_a, tenant_a, settings, fake_dns):
    fake_dns.add("hooks.shop.test", "93.184.215.14")
    assert client_a.put(SETTINGS, {"webhook_url": "https://hooks.shop.test/layan"}, format="json").status_code == 200
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9000"]
    assert client_a.put(SETTINGS, {"webhook_url": "http://127.0.0.1:9000/hook"}, format="json").status_code == 200
    assert_error(client_a.put(SETTINGS, {"webhook_url": "http://127.0.0.1:9001/hook"}, format="json"), 422,
                 "url_not_allowed")


def test_the_admin_refuses_an_internal_webhook(tenant_a):
    from tenants.admin import TenantForm

    form = TenantForm(instance=tenant_a, data={"id": tenant_a.pk, "name": "A", "locale": "id-ID",
                                               "timezone": "Asia/Jakarta", "is_active": "on",
                                               "webhook_url": "http://169.254.169.254/latest/meta-data/"})
    assert not form.is_valid() and "private address" in str(form.errors["webhook_url"])


def test_a_followup_to_a_stored_internal_url_reaches_nothing(client_a, tenant_a, internal, make_contact,
                                                            make_followup):
    tenant = _store_url(tenant_a, f"http://user:pass@127.0.0.1:{internal.port}/internal")
    first = _due_followup(tenant, make_contact, make_followup)
    assert _dispatch().failed == 1
    _store_url(tenant_a, f"{internal.url}/internal")
    second = make_followup(tenant, first.contact)
    assert _dispatch().failed == 1
    assert internal.requests == []
    seen = {row["id"]: row["last_error"] for row in client_a.get("/followup").json()["results"]}
    assert seen == {first.pk: "refused: url not allowed", second.pk: "refused: private address"}


def test_dns_changed_to_loopback_after_the_url_was_set(client_a, tenant_a, internal, fake_dns, make_contact,
                                                       make_followup):
    fake_dns.add("hooks.shop.test", "93.184.215.14")
    url = f"http://hooks.shop.test:{internal.port}/layan"
    assert client_a.put(SETTINGS, {"webhook_url": url}, format="json").status_code == 200
    fake_dns.add("hooks.shop.test", "127.0.0.1")
    tenant_a.refresh_from_db()
    followup = _due_followup(tenant_a, make_contact, make_followup)
    assert _dispatch().failed == 1 and internal.requests == []
    assert client_a.get(f"/followup/{followup.pk}").json()["last_error"] == "refused: private address"


def test_what_the_tenant_reads_back_is_the_status_class_only(client_a, tenant_a, internal, settings, make_contact,
                                                             make_followup):
    """Even where the installation opened the address, the receiver's answer stays unread."""
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{internal.port}"]
    tenant = _store_url(tenant_a, f"{internal.url}/internal")
    followup = _due_followup(tenant, make_contact, make_followup)
    assert _dispatch().failed == 1 and len(internal.requests) == 1
    body = client_a.get(f"/followup/{followup.pk}").content.decode()
    assert '"last_error":"http 4xx"' in body and "SECRET" not in body and "404" not in body


def test_closed_ports_and_timeouts_read_the_same_whatever_the_port(client_a, tenant_a, settings, make_contact,
                                                                   make_followup):
    closed = FakeHTTPServer(lambda request: Response()).start()
    port = closed.port
    closed.stop()
    settings.OUTBOUND_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    settings.FOLLOWUP_WEBHOOK_TIMEOUT_SECONDS = 2.0
    tenant = _store_url(tenant_a, f"http://127.0.0.1:{port}/")
    followup = _due_followup(tenant, make_contact, make_followup)
    assert _dispatch().retried == 1
    assert client_a.get(f"/followup/{followup.pk}").json()["last_error"] == "connection failed"


def test_a_handoff_event_to_an_internal_url_reaches_nothing(tenant_a, internal, scoped):
    from channels.handoff.events import handoff_event_send
    from channels.models import HandoffEvent
    from conversations.models import Conversation

    tenant = _store_url(tenant_a, f"http://[::ffff:127.0.0.1]:{internal.port}/internal")
    with scoped(tenant):
        conversation = Conversation.objects.create(tenant=tenant, channel="web", user_id="u1")
        event = HandoffEvent.objects.create(tenant=tenant, conversation=conversation, from_status="bot",
                                            to_status="human", reason="operator")
        assert handoff_event_send(event=event) == "failed"
        event.refresh_from_db()
    assert (event.webhook_status, event.webhook_detail) == ("failed", "refused: private address")
    assert internal.requests == []


@pytest.mark.parametrize("allow_private, accepted", [(False, False), (True, True)])
def test_a_tool_url_is_refused_in_the_admin(tenant_a, allow_private, accepted):
    from tools.admin import TenantToolForm

    data = {"tenant": tenant_a.pk, "name": "cek_pesanan", "description": "Cek pesanan.", "enabled": "on",
            "intent": "", "method": "GET", "url_template": "http://169.254.169.254/latest/{order_id}",
            "parameters": "{}", "response_mapping": "{}", "timeout_seconds": "8"}
    if allow_private:
        data["allow_private_network"] = "on"
    with scopes_disabled():  # as the admin runs (tenants.scoping.AdminScopesMiddleware)
        form = TenantToolForm(data=data)
        assert form.is_valid() is accepted, form.errors
    if not accepted:
        assert "private address" in str(form.errors["url_template"])


def test_the_webhook_secret_is_encrypted_at_rest(client_a, tenant_a):
    client_a.put(SETTINGS, {"webhook_secret": "a-receiver-chosen-secret-1234"}, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM tenants_tenant WHERE id = %s", [tenant_a.pk])
        [stored] = cursor.fetchone()
    assert stored.startswith("fernet:") and "a-receiver-chosen" not in stored
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_secret == "a-receiver-chosen-secret-1234"


def test_the_migration_encrypts_existing_plaintext_secrets(tenant_a, tenant_b):
    """Rows written before the change hold plaintext: the migration encrypts them in place,
    and what was already encrypted is left as it is."""
    migration = importlib.import_module("tenants.migrations.0006_tenant_webhook_secret_encrypted")
    tenant_b.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tenants_tenant SET webhook_secret = 'whsec_plain_from_before_0123456789' "
                       "WHERE id = %s", [tenant_a.pk])
        cursor.execute("SELECT webhook_secret FROM tenants_tenant WHERE id = %s", [tenant_b.pk])
        [b_before] = cursor.fetchone()
    migration.encrypt_existing(None, connection.schema_editor())
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, webhook_secret FROM tenants_tenant ORDER BY id")
        stored = dict(cursor.fetchall())
    assert stored[tenant_a.pk].startswith("fernet:") and stored[tenant_b.pk] == b_before
    with scopes_disabled():
        assert Tenant.objects.get(pk=tenant_a.pk).webhook_secret == "whsec_plain_from_before_0123456789"
