"""POST /chat follows the handoff rules too: a customer asking for a person is handed
over, the bot is silent while a person has the conversation, and an assistant reply
saying it cannot help hands over."""

from __future__ import annotations

import json

import pytest
from django_scopes import scopes_disabled

from channels.models import HandoffEvent
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def _chat(client, text, **extra):
    return client.post("/chat", {"user_id": "web-1", "channel": "web", "messages": [{"role": "user", "content": text}],
                                 **extra}, format="json")


def _conversation(tenant):
    with scopes_disabled():
        return Conversation.objects.get(tenant=tenant, user_id="web-1")


def test_chat_hands_over_and_stays_silent_until_handed_back(client_a, kb, tenant_a):
    kb(tenant_a)
    asked = _chat(client_a, "Saya mau bicara dengan admin")
    assert asked.status_code == 200, asked.content
    body = asked.json()
    assert (body["finish_reason"], body["status"]) == ("handoff", "human")
    assert "tim kami" in body["reply"] and body["bubbles"] == [body["reply"]]
    conversation = _conversation(tenant_a)
    assert conversation.status == "human"

    silent = _chat(client_a, "Jam buka toko?")
    assert silent.status_code == 200
    assert (silent.json()["reply"], silent.json()["bubbles"], silent.json()["status"]) == ("", [], "human")
    with scopes_disabled():
        roles = list(Message.objects.filter(conversation=conversation).values_list("role", "content"))
    assert roles[-1] == ("user", "Jam buka toko?") and [r for r, _ in roles].count("assistant") == 1  # the notice

    assert client_a.post(f"/conversations/{conversation.pk}/handoff", {"status": "bot"},
                         format="json").status_code == 200
    answered = _chat(client_a, "Jam buka toko?")
    assert answered.json()["status"] == "bot" and "08.00" in answered.json()["reply"]


def test_chat_reply_that_cannot_help_hands_over(client_a, tenant_a):
    body = _chat(client_a, "Apakah bisa pesan karangan bunga duka cita untuk besok pagi?").json()
    assert body["status"] == "human"
    with scopes_disabled():
        assert HandoffEvent.objects.get().reason == "model_cannot_help"


def test_chat_stream_is_silent_while_a_human_has_it(client_a, tenant_a, scoped):
    with scoped(tenant_a):
        Conversation.objects.create(tenant=tenant_a, channel="web", user_id="web-1", status="human")
    response = _chat(client_a, "Halo?", stream=True)
    assert response.status_code == 200
    events = b"".join(response.streaming_content).decode()
    done = [block for block in events.split("\n\n") if block.startswith("event: done")]
    assert len(done) == 1 and "event: bubble" not in events
    payload = json.loads(done[0].split("data: ", 1)[1])
    assert (payload["reply"], payload["status"]) == ("", "human")


def test_a_closed_conversation_reopens_on_chat(client_a, kb, tenant_a, scoped):
    kb(tenant_a)
    with scoped(tenant_a):
        Conversation.objects.create(tenant=tenant_a, channel="web", user_id="web-1", status="closed")
    body = _chat(client_a, "Jam buka toko?").json()
    assert body["status"] == "bot" and body["reply"]
