"""The playground's JSON endpoint: odd bodies, and what a view-only user can write with it."""
from __future__ import annotations

import json

import pytest
from django_scopes import scopes_disabled

from conftest import staff_client, super_client

from conversations.tests.conftest import _chat_settings  # noqa: F401

pytestmark = pytest.mark.django_db
SEND = "/admin/conversations/conversation/playground/send/"


def post(client, body: str):
    return client.post(SEND, body, content_type="application/json")


@pytest.mark.parametrize("body", ["[]", "null", '"hi"', "5"])
def test_playground_send_refuses_json_that_is_not_an_object(tenant_a, body):
    response = post(super_client(), body)
    assert response.status_code == 400, response.status_code


def test_playground_send_refuses_a_nul_in_the_tenant_id(tenant_a):
    response = post(super_client(), json.dumps({"tenant_id": "tenant-a\u0000", "channel": "web", "message": "hi"}))
    assert response.status_code == 400, response.status_code


def test_playground_send_answers_a_nul_in_the_message(tenant_a):
    response = post(super_client(), json.dumps({"tenant_id": "tenant-a", "channel": "web", "message": "hi\u0000there"}))
    assert response.status_code in (200, 400), response.status_code


def test_playground_send_answers_a_nul_in_the_user_id(tenant_a):
    response = post(super_client(), json.dumps({"tenant_id": "tenant-a", "channel": "web", "message": "hi",
                                                "user_id": "a\u0000b"}))
    assert response.status_code in (200, 400), response.status_code


@pytest.mark.parametrize("locale", [5, ["id"], {"x": 1}, "x" * 5000, "\u0000"])
def test_playground_send_odd_locale(tenant_a, locale):
    response = post(super_client(), json.dumps({"tenant_id": "tenant-a", "channel": "web", "message": "hi",
                                                "locale": locale}))
    assert response.status_code in (200, 400), response.status_code


def test_playground_send_lone_surrogate(tenant_a):
    response = post(super_client(), '{"tenant_id": "tenant-a", "channel": "web", "message": "hi \\ud800"}')
    assert response.status_code in (200, 400), response.status_code


def test_playground_send_huge_message(tenant_a):
    response = post(super_client(), json.dumps({"tenant_id": "tenant-a", "channel": "web", "message": "kata " * 200000}))
    assert response.status_code in (200, 400, 413, 422), response.status_code


def test_a_view_only_user_cannot_write_into_a_customers_history(client_a, tenant_a):
    """Sending from the playground writes a conversation and the contact's history: a user who may
    only view conversations cannot, even naming a real customer's user_id."""
    from contacts.models import ContactLog
    from conversations.models import Conversation, Message

    body = client_a.post("/chat", {"user_id": "6281234", "channel": "whatsapp",
                                   "messages": [{"role": "user", "content": "halo"}]}, format="json").json()
    with scopes_disabled():
        before = (Message.objects.count(), ContactLog.objects.count(), Conversation.objects.count())
    viewer = staff_client("conversations.view_conversation")
    response = post(viewer, json.dumps({"tenant_id": "tenant-a", "channel": "whatsapp", "user_id": "6281234",
                                        "message": "saya mau batalkan semua pesanan"}))
    with scopes_disabled():
        after = (Message.objects.count(), ContactLog.objects.count(), Conversation.objects.count())
        injected = Message.objects.filter(conversation_id=body["conversation_id"],
                                          content__startswith="saya mau batalkan").exists()
    assert response.status_code == 403, (response.status_code, after, before)
    assert not injected and after == before


def test_the_playground_refuses_a_deactivated_tenant(tenant_a, client_a):
    """As /chat (403) and the playground page (only active tenants listed): nothing runs or is stored."""
    from conversations.models import Conversation
    from tenants.models import Tenant

    Tenant.objects.filter(pk="tenant-a").update(is_active=False)
    api = client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "hi"}]}, format="json")
    assert api.status_code == 403
    response = post(super_client(), json.dumps({"tenant_id": "tenant-a", "channel": "web", "message": "hi"}))
    with scopes_disabled():
        stored = Conversation.objects.filter(tenant_id="tenant-a").count()
    assert response.status_code == 400 and stored == 0, (response.status_code, stored)
