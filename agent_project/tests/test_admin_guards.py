"""Admin guards that hold: delete pages, CSRF on custom views, view-only limits, merges within a tenant."""
from __future__ import annotations

import json

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from conftest import staff_client, super_client

from conversations.tests.conftest import _chat_settings  # noqa: F401
from tools.tests.conftest import order_tool, shop_api  # noqa: F401

pytestmark = pytest.mark.django_db


def test_delete_pages_of_contact_and_conversation(client_a, tenant_a):
    from contacts.models import Contact
    from conversations.models import Conversation

    body = client_a.post("/chat", {"user_id": "6281234", "channel": "whatsapp",
                                   "messages": [{"role": "user", "content": "halo"}]}, format="json").json()
    with scopes_disabled():
        conv = Conversation.objects.get(pk=body["conversation_id"])
        contact_id = conv.contact_id
    client = super_client()
    for url in (f"/admin/conversations/conversation/{conv.pk}/delete/", f"/admin/contacts/contact/{contact_id}/delete/"):
        page = client.get(url)
        assert page.status_code == 200 and b"Yes, I" in page.content, url
        assert b"would require deleting the following protected" not in page.content
        assert b"but your account doesn" not in page.content
    assert client.post(f"/admin/conversations/conversation/{conv.pk}/delete/", {"post": "yes"}).status_code == 302
    assert client.post(f"/admin/contacts/contact/{contact_id}/delete/", {"post": "yes"}).status_code == 302
    with scopes_disabled():
        assert not Contact.objects.filter(pk=contact_id).exists()


def test_custom_views_need_csrf(tenant_a, shop_api, order_tool):
    from django.contrib.auth.models import User

    tool = order_tool(tenant_a, shop_api)
    user = User.objects.create_superuser("c", "c@example.com", "pw-123456789")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/admin/conversations/conversation/playground/send/", json.dumps(
        {"tenant_id": "tenant-a", "message": "hi"}), content_type="application/json").status_code == 403
    assert client.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": "{}"}).status_code == 403


def test_view_only_tool_user_sees_no_headers_and_cannot_try(tenant_a, shop_api, order_tool):
    tool = order_tool(tenant_a, shop_api)
    client = staff_client("tools.view_tenanttool")
    page = client.get(f"/admin/tools/tenanttool/{tool.pk}/change/")
    assert page.status_code == 200 and b"shop-secret-token" not in page.content
    assert client.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": "{}"}).status_code == 403


def test_view_only_user_cannot_run_change_actions(tenant_a):
    from tenants.models import ApiKey

    client = staff_client("tenants.view_tenant", "tenants.view_apikey")
    with scopes_disabled():
        before = ApiKey.objects.count()
        key = ApiKey.objects.first()
    client.post("/admin/tenants/tenant/", {"action": "issue_api_key", "_selected_action": ["tenant-a"]})
    client.post("/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    with scopes_disabled():
        assert ApiKey.objects.count() == before and ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_merge_of_two_tenants_refused(tenant_a, tenant_b):
    from contacts.models import Contact
    from contacts.services import contact_upsert

    a = contact_upsert(tenant=tenant_a, data={"name": "A", "phone": "081200000001"}).contact
    b = contact_upsert(tenant=tenant_b, data={"name": "B", "phone": "081200000002"}).contact
    client = super_client()
    client.post("/admin/contacts/contact/", {"action": "merge_contacts", "_selected_action": [a.pk, b.pk],
                                             "confirm": "yes", "target": a.pk})
    with scopes_disabled():
        assert Contact.objects.filter(pk__in=[a.pk, b.pk]).count() == 2
