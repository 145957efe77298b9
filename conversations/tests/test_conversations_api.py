from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import assert_error
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def chat(client, user_id, content="Berapa harga buket mawar merah?", channel="whatsapp"):
    response = client.post("/chat", {"user_id": user_id, "channel": channel,
                                     "messages": [{"role": "user", "content": content}]}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def three_conversations(client_a, kb_a):
    return [chat(client_a, "6281111"), chat(client_a, "6282222"), chat(client_a, "web-1", channel="web")]


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(c["id"] for c in response.json()["results"])


def test_list_and_filters(client_a, three_conversations, scoped, kb_a):
    wa1, wa2, web = (c["conversation_id"] for c in three_conversations)
    assert ids(client_a.get("/conversations")) == sorted([wa1, wa2, web])
    assert ids(client_a.get("/conversations/?channel=whatsapp")) == sorted([wa1, wa2])
    assert ids(client_a.get("/conversations?user_id=web-1")) == [web]
    with scoped(kb_a):
        contact_id = Conversation.objects.get(pk=wa2).contact_id
        Conversation.objects.filter(pk=wa1).update(last_message_at=timezone.now() - timedelta(days=10))
    assert ids(client_a.get(f"/conversations?contact_id={contact_id}")) == [wa2]
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert ids(client_a.get(f"/conversations?since={since}")) == sorted([wa2, web])
    until = (timezone.now() - timedelta(days=5)).date().isoformat()
    assert ids(client_a.get(f"/conversations?until={until}")) == [wa1]
    assert ids(client_a.get("/conversations?status=bot")) == sorted([wa1, wa2, web])
    listed = client_a.get(f"/conversations?user_id=6282222").json()["results"][0]
    assert listed["message_count"] == 2 and listed["channel"] == "whatsapp" and listed["status"] == "bot"


@pytest.mark.parametrize("query", ["since=yesterday", "until=2026-13-45", "contact_id=abc", "status=sleeping"])
def test_bad_filters_are_400(client_a, query, tenant_a):
    assert_error(client_a.get(f"/conversations?{query}"), 400, "invalid_filter")


def test_detail_has_the_messages(client_a, three_conversations):
    first = three_conversations[0]
    body = client_a.get(f"/conversations/{first['conversation_id']}/").json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    reply = body["messages"][1]
    assert reply["id"] == first["message_id"] and reply["bubbles"] == first["bubbles"]
    assert reply["sources"] == first["sources"] and reply["provider"] == "offline"


def test_feedback_on_an_assistant_message(client_a, three_conversations, scoped, kb_a):
    first = three_conversations[0]
    url = f"/conversations/{first['conversation_id']}/messages/{first['message_id']}/feedback"
    response = client_a.post(url, {"rating": "down", "comment": "Harga salah"}, format="json")
    assert response.status_code == 200
    assert response.json()["feedback"] == "down" and response.json()["feedback_comment"] == "Harga salah"
    with scoped(kb_a):
        assert Message.objects.get(pk=first["message_id"]).feedback == "down"
    assert client_a.post(url + "/", {"rating": "up"}, format="json").json()["feedback"] == "up"
    cleared = client_a.post(url, {"rating": None}, format="json").json()
    assert cleared["feedback"] == "" and cleared["feedback_at"] is None


def test_feedback_refusals(client_a, three_conversations, scoped, kb_a):
    first, second = three_conversations[0], three_conversations[1]
    base = f"/conversations/{first['conversation_id']}/messages"
    with scoped(kb_a):
        user_turn = Message.objects.filter(conversation_id=first["conversation_id"], role="user").first()
    assert_error(client_a.post(f"{base}/{user_turn.pk}/feedback", {"rating": "up"}, format="json"), 422,
                 "feedback_not_allowed")
    assert_error(client_a.post(f"{base}/{first['message_id']}/feedback", {"rating": "meh"}, format="json"), 400,
                 "validation_error")
    # a message of another conversation through this conversation's path
    assert_error(client_a.post(f"{base}/{second['message_id']}/feedback", {"rating": "up"}, format="json"), 404,
                 "message_not_found")
    assert_error(client_a.post(f"/conversations/999999/messages/{first['message_id']}/feedback", {"rating": "up"},
                               format="json"), 404, "conversation_not_found")


def test_cross_tenant_refusals_on_every_conversation_route(client_a, client_b, three_conversations, scoped, kb_a):
    first = three_conversations[0]
    cid, mid = first["conversation_id"], first["message_id"]
    # tenant B's key on tenant A's objects: the same 404 as a missing one
    assert client_b.get("/conversations").json()["results"] == []
    assert_error(client_b.get(f"/conversations/{cid}"), 404, "conversation_not_found")
    assert_error(client_b.post(f"/conversations/{cid}/messages/{mid}/feedback", {"rating": "up"}, format="json"),
                 404, "conversation_not_found")
    # tenant B's key naming tenant A: 403
    headers = {"HTTP_X_TENANT_ID": "tenant-a"}
    assert_error(client_b.get("/conversations", **headers), 403, "tenant_mismatch")
    assert_error(client_b.get(f"/conversations/{cid}", **headers), 403, "tenant_mismatch")
    assert_error(client_b.post(f"/conversations/{cid}/messages/{mid}/feedback", {"rating": "up"}, format="json",
                               **headers), 403, "tenant_mismatch")
    with scoped(kb_a):
        assert Message.objects.get(pk=mid).feedback == ""


def test_global_key_reads_the_named_tenant(api_client, three_conversations, tenant_b):
    from conftest import GLOBAL_KEY

    assert len(api_client(GLOBAL_KEY, "tenant-a").get("/conversations").json()["results"]) == 3
    assert api_client(GLOBAL_KEY, "tenant-b").get("/conversations").json()["results"] == []


def test_schema_documents_the_chat_routes(client_a):
    schema = client_a.get("/api/schema?format=json").json()
    paths = schema["paths"]
    assert any(p.startswith("/chat") for p in paths)
    assert any("/feedback" in p for p in paths)
