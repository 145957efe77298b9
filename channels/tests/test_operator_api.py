"""POST /conversations/{id}/reply and /handoff: operators take over and hand back;
refusals are clear and change nothing; another tenant's conversations are invisible."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scopes_disabled

from channels.base import InboundItem
from channels.inbound import inbound_record
from channels.models import HandoffEvent
from channels.tests.support import signature_ok
from conftest import GLOBAL_KEY, assert_error
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db
WA_ID = "6281234567890"


@pytest.fixture
def conversation(scoped):
    def make(tenant, channel="web", user_id="web-user-1", status="bot"):
        with scoped(tenant):
            return Conversation.objects.create(tenant=tenant, channel=channel, user_id=user_id, status=status)

    return make


def _messages(conv):
    with scopes_disabled():
        return list(Message.objects.filter(conversation=conv).values_list("role", "content"))


def test_reply_on_the_web_channel_is_stored_and_takes_over(client_a, tenant_a, conversation, queue):
    conv = conversation(tenant_a)
    response = client_a.post(f"/conversations/{conv.pk}/reply/", {"text": "  Halo, saya Rina.  "}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["role"], body["content"], body["conversation"]) == ("operator", "Halo, saya Rina.", conv.pk)
    conv.refresh_from_db()
    assert conv.status == "human"
    assert _messages(conv) == [("operator", "Halo, saya Rina.")]
    with scopes_disabled():
        event = HandoffEvent.objects.get()
        key_prefix = tenant_a.api_keys.get().prefix
    assert (event.reason, event.actor, event.webhook_status) == ("operator", f"key:{key_prefix}", "skipped")


def test_reply_outside_the_whatsapp_window_is_refused_and_nothing_changes(client_a, wa_a, fake_wa, conversation):
    conv = conversation(wa_a, channel="whatsapp", user_id=WA_ID)
    inbound_record(tenant=wa_a, channel="whatsapp", item=InboundItem(
        external_id="wamid.old", user_id=WA_ID, kind="text", text="Halo", sent_at=datetime.now(tz=UTC) - timedelta(
            hours=26)))
    response = client_a.post(f"/conversations/{conv.pk}/reply", {"text": "Maaf baru balas"}, format="json")
    error = assert_error(response, 409, "whatsapp_window_closed")
    assert error["details"]["delivered_parts"] == 0
    conv.refresh_from_db()
    assert conv.status == "bot" and _messages(conv) == [] and fake_wa.requests == []


def test_reply_inside_the_window_goes_out_on_whatsapp(client_a, wa_a, fake_wa, conversation):
    conv = conversation(wa_a, channel="whatsapp", user_id=WA_ID, status="human")
    inbound_record(tenant=wa_a, channel="whatsapp", item=InboundItem(
        external_id="wamid.new", user_id=WA_ID, kind="text", text="Halo", sent_at=datetime.now(tz=UTC)))
    fake_wa.customer_wrote(WA_ID)
    response = client_a.post(f"/conversations/{conv.pk}/reply", {"text": "Siap, Kak."}, format="json")
    assert response.status_code == 201
    assert fake_wa.texts(WA_ID) == ["Siap, Kak."]
    with scopes_disabled():
        assert not HandoffEvent.objects.exists()  # it was human already


def test_a_failed_delivery_answers_502_and_stores_nothing(client_a, tg_a, fake_tg, conversation):
    conv = conversation(tg_a, channel="telegram", user_id="5550001")
    fake_tg.add_chat(5550001)
    fake_tg.blocked.add("5550001")
    error = assert_error(client_a.post(f"/conversations/{conv.pk}/reply", {"text": "Halo"}, format="json"), 502,
                         "channel_send_failed")
    assert error["details"]["platform_code"] == "403" and error["details"]["retryable"] is False
    conv.refresh_from_db()
    assert conv.status == "bot" and _messages(conv) == []


@pytest.mark.parametrize("payload,status,code", [
    ({"text": "   "}, 422, "empty_reply"),
    ({}, 400, "validation_error"),
    ({"text": "x" * 8001}, 422, "reply_too_long"),
])
def test_bad_replies(client_a, tenant_a, conversation, payload, status, code):
    conv = conversation(tenant_a)
    assert_error(client_a.post(f"/conversations/{conv.pk}/reply", payload, format="json"), status, code)
    assert _messages(conv) == []


def test_handoff_route_switches_and_notifies(client_a, tg_a, fake_tg, conversation, hooked, receiver, queue,
                                             django_capture_on_commit_callbacks):
    hooked(tg_a)
    fake_tg.add_chat(5550001)
    conv = conversation(tg_a, channel="telegram", user_id="5550001")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(f"/conversations/{conv.pk}/handoff", {"status": "human", "note": "VIP"},
                                 format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["changed"], body["customer_notified"]) == ("human", True, True)
    assert "tim kami" in fake_tg.texts("5550001")[0]
    assert [r for _, r in queue.run_all()] == ["sent"]
    [(headers, raw)] = receiver.received
    assert signature_ok(tg_a.webhook_secret, headers, raw)
    assert headers["Idempotency-Key"] == f"handoff_{body['event_id']}"
    event = json.loads(raw)
    assert (event["status"], event["reason"], event["note"], event["channel"]) == ("human", "operator", "VIP",
                                                                                   "telegram")

    again = client_a.post(f"/conversations/{conv.pk}/handoff", {"status": "human"}, format="json")
    assert again.json()["changed"] is False and again.json()["event_id"] is None

    closed = client_a.post(f"/conversations/{conv.pk}/handoff", {"status": "closed", "notify": False}, format="json")
    assert closed.json()["status"] == "closed" and closed.json()["customer_notified"] is None
    assert len(fake_tg.texts("5550001")) == 1  # not told about the close


def test_a_refused_event_is_recorded_as_failed(client_a, tenant_a, conversation, hooked, receiver, queue,
                                               django_capture_on_commit_callbacks):
    hooked(tenant_a)
    receiver.status = 410
    conv = conversation(tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        client_a.post(f"/conversations/{conv.pk}/handoff", {"status": "human"}, format="json")
    assert [r for _, r in queue.run_all()] == ["failed"]
    assert len(receiver.received) == 1  # a 4xx is not retried
    with scopes_disabled():
        assert HandoffEvent.objects.get().webhook_status == "failed"


def test_invalid_status(client_a, tenant_a, conversation):
    conv = conversation(tenant_a)
    assert_error(client_a.post(f"/conversations/{conv.pk}/handoff", {"status": "robot"}, format="json"), 400,
                 "validation_error")
    conv.refresh_from_db()
    assert conv.status == "bot"


@pytest.mark.parametrize("route,payload", [("reply", {"text": "Halo"}), ("handoff", {"status": "human"})])
def test_cross_tenant_refusals(api_client, client_b, anon_client, tenant_a, tenant_b, conversation, route, payload):
    conv = conversation(tenant_a)
    url = f"/conversations/{conv.pk}/{route}"
    assert_error(client_b.post(url, payload, format="json"), 404, "conversation_not_found")
    assert_error(api_client(tenant_b.test_key, tenant_a.pk).post(url, payload, format="json"), 403, "tenant_mismatch")
    assert_error(api_client(GLOBAL_KEY, tenant_b.pk).post(url, payload, format="json"), 404, "conversation_not_found")
    assert_error(anon_client.post(url, payload, format="json"), 401)
    assert_error(client_b.post("/conversations/999999/" + route, payload, format="json"), 404,
                 "conversation_not_found")
    conv.refresh_from_db()
    assert conv.status == "bot" and _messages(conv) == []
    with scopes_disabled():
        assert not HandoffEvent.objects.exists()


def test_global_key_acts_for_the_named_tenant(api_client, tenant_a, conversation):
    conv = conversation(tenant_a)
    response = api_client(GLOBAL_KEY, tenant_a.pk).post(f"/conversations/{conv.pk}/handoff", {"status": "closed"},
                                                       format="json")
    assert response.status_code == 200 and response.json()["status"] == "closed"
