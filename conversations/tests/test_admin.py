from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def send(client, **payload):
    return client.post("/admin/conversations/conversation/playground/send/", json.dumps(payload),
                       content_type="application/json")


def test_admin_pages_render(operator, client_a, kb_a):
    body = client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "harga mawar?"}]},
                         format="json").json()
    listing = operator.get("/admin/conversations/conversation/")
    assert listing.status_code == 200 and b"Chat playground" in listing.content
    change = operator.get(f"/admin/conversations/conversation/{body['conversation_id']}/change/")
    assert change.status_code == 200 and b"harga mawar?" in change.content
    assert operator.get("/admin/conversations/message/").status_code == 200
    page = operator.get("/admin/conversations/conversation/playground/")
    assert page.status_code == 200 and b'value="tenant-a"' in page.content and b"offline" in page.content


def test_playground_send_returns_prompt_and_passages(operator, kb_a):
    response = send(operator, tenant_id="tenant-a", channel="whatsapp", message="Berapa harga buket mawar merah?")
    assert response.status_code == 200
    body = response.json()
    assert "Kamu asisten Toko A." in body["prompt"] and "[user]\nBerapa harga buket mawar merah?" in body["prompt"]
    assert body["retrieved"][0]["used"] is True and body["retrieved"][0]["title"] == "Daftar harga buket"
    assert {"score", "scores", "text", "chunk_id"} <= set(body["retrieved"][0])
    assert body["bubbles"] and body["conversation_id"]


@pytest.mark.parametrize("payload", [
    {"tenant_id": "nope", "channel": "web", "message": "hi"},
    {"tenant_id": "tenant-a", "channel": "web", "message": "  "},
    {"tenant_id": "tenant-a", "channel": "carrier-pigeon", "message": "hi"},
])
def test_playground_send_refuses_bad_input(operator, tenant_a, payload):
    response = send(operator, **payload)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_playground_needs_a_logged_in_operator(tenant_a):
    anonymous = Client()
    assert anonymous.get("/admin/conversations/conversation/playground/").status_code == 302
    response = send(anonymous, tenant_id="tenant-a", channel="web", message="hi")
    assert response.status_code == 302  # to the login page, nothing run


def test_playground_refuses_staff_without_permission(django_user_model, tenant_a):
    user = django_user_model.objects.create_user("staff", "s@example.com", "pw-123456789", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/admin/conversations/conversation/playground/").status_code == 403
    assert send(client, tenant_id="tenant-a", channel="web", message="hi").status_code == 403
