"""The webhook routes: verify handshake, signatures and secrets, cross-tenant confusion,
duplicate deliveries — each refusal with nothing stored and nothing enqueued."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from channels.models import InboundMessage
from channels.tests.conftest import APP_SECRET_A, APP_SECRET_B, TG_SECRET_A, TG_SECRET_B, WA_NUMBER_A, WA_NUMBER_B
from channels.tests.fakes import tg_update, wa_text, wa_webhook
from channels.tests.support import post_telegram, post_whatsapp
from conftest import assert_error
from contacts.models import Contact
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def _nothing_stored():
    with scopes_disabled():
        return (InboundMessage.objects.count(), Contact.objects.count(), Conversation.objects.count(),
                Message.objects.count()) == (0, 0, 0, 0)


def _payload(number=WA_NUMBER_A, message_id="wamid.A1", text="Halo, jam buka?"):
    return wa_webhook(phone_number_id=number, messages=[wa_text("6281234567890", text, message_id)])


# --- WhatsApp verify handshake ------------------------------------------------------

def test_whatsapp_verify_handshake_echoes_the_challenge(anon_client, wa_a):
    response = anon_client.get(f"/channels/whatsapp/{wa_a.pk}/webhook",
                               {"hub.mode": "subscribe", "hub.verify_token": "verify-me-a",
                                "hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": "verify-me-a", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": "verify-me-b", "hub.challenge": "1"},  # tenant B's token
    {},
])
def test_whatsapp_verify_handshake_refuses_a_wrong_token(anon_client, wa_a, wa_b, params):
    assert_error(anon_client.get(f"/channels/whatsapp/{wa_a.pk}/webhook", params), 403, "verify_token_mismatch")


def test_unknown_tenant_and_unconfigured_channel_answer_the_same_404(anon_client, wa_a, tenant_b):
    for tenant_id in ("no-such-tenant", tenant_b.pk):
        assert_error(anon_client.get(f"/channels/whatsapp/{tenant_id}/webhook",
                                     {"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"}),
                     404, "channel_not_configured")
        assert_error(post_whatsapp(anon_client, tenant_id, _payload(), app_secret=APP_SECRET_A),
                     404, "channel_not_configured")
    assert _nothing_stored()


# --- WhatsApp signatures ----------------------------------------------------------

def test_whatsapp_signed_delivery_is_stored_and_enqueued(anon_client, wa_a, queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_whatsapp(anon_client, wa_a.pk, _payload(), app_secret=APP_SECRET_A)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 1, "duplicates": 0}
    with scopes_disabled():
        row = InboundMessage.objects.get()
    assert (row.tenant_id, row.channel, row.external_id, row.user_id, row.text, row.name, row.status) == (
        wa_a.pk, "whatsapp", "wamid.A1", "6281234567890", "Halo, jam buka?", "Budi", "received")
    assert queue.size() == 1


@pytest.mark.parametrize("signature,status,code", [
    (None, 401, "signature_missing"),
    ("sha256=" + "0" * 64, 403, "signature_invalid"),
    ("sha1=abcdef", 403, "signature_invalid"),
    ("garbage", 403, "signature_invalid"),
])
def test_whatsapp_bad_signature_is_refused_without_side_effects(anon_client, wa_a, queue, signature, status, code,
                                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_whatsapp(anon_client, wa_a.pk, _payload(), app_secret=None, signature=signature)
    assert_error(response, status, code)
    assert _nothing_stored() and queue.size() == 0


def test_whatsapp_body_changed_after_signing_is_refused(anon_client, wa_a, queue):
    good = whatsapp_sign(_payload(text="Halo"))
    body = _payload(text="Halo, kirim semua data pelanggan")
    response = post_whatsapp(anon_client, wa_a.pk, body, app_secret=None, signature=good)
    assert_error(response, 403, "signature_invalid")
    assert _nothing_stored() and queue.size() == 0


def whatsapp_sign(payload):
    import json

    from channels import whatsapp

    return whatsapp.sign(app_secret=APP_SECRET_A, body=json.dumps(payload).encode())


def test_cross_tenant_whatsapp_signature_is_refused(anon_client, wa_a, wa_b, queue,
                                                    django_capture_on_commit_callbacks):
    """Tenant A's app secret signing a delivery posted on tenant B's path: refused, nothing stored."""
    with django_capture_on_commit_callbacks(execute=True):
        response = post_whatsapp(anon_client, wa_b.pk, _payload(number=WA_NUMBER_A), app_secret=APP_SECRET_A)
        response_b_number = post_whatsapp(anon_client, wa_b.pk, _payload(number=WA_NUMBER_B), app_secret=APP_SECRET_A)
    assert_error(response, 403, "signature_invalid")
    assert_error(response_b_number, 403, "signature_invalid")
    assert _nothing_stored() and queue.size() == 0


def test_shared_meta_app_cannot_deliver_another_tenants_number(anon_client, wa_a, wa_b, queue,
                                                               django_capture_on_commit_callbacks):
    """Two tenants on one Meta app share its secret: the phone number id decides, so tenant A's
    number posted on tenant B's path is still refused."""
    from channels.services import channel_config_update

    channel_config_update(tenant=wa_b, data={"whatsapp": {"app_secret": APP_SECRET_A}})
    with django_capture_on_commit_callbacks(execute=True):
        response = post_whatsapp(anon_client, wa_b.pk, _payload(number=WA_NUMBER_A), app_secret=APP_SECRET_A)
    assert_error(response, 403, "phone_number_mismatch")
    assert _nothing_stored() and queue.size() == 0


def test_whatsapp_malformed_payload(anon_client, wa_a):
    response = post_whatsapp(anon_client, wa_a.pk, {"object": "page", "entry": []}, app_secret=APP_SECRET_A)
    assert_error(response, 400, "invalid_webhook_payload")
    assert _nothing_stored()


def test_whatsapp_status_receipts_are_acknowledged_and_ignored(anon_client, wa_a, queue):
    payload = wa_webhook(phone_number_id=WA_NUMBER_A, messages=[], statuses=[
        {"id": "wamid.OUT1", "status": "delivered", "timestamp": "1700000000", "recipient_id": "6281234567890"}])
    response = post_whatsapp(anon_client, wa_a.pk, payload, app_secret=APP_SECRET_A)
    assert response.status_code == 200 and response.json() == {"received": 0, "duplicates": 0}
    assert _nothing_stored() and queue.size() == 0


def test_whatsapp_duplicate_delivery_is_stored_and_enqueued_once(anon_client, wa_a, queue,
                                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_whatsapp(anon_client, wa_a.pk, _payload(), app_secret=APP_SECRET_A)
        second = post_whatsapp(anon_client, wa_a.pk, _payload(), app_secret=APP_SECRET_A)
    assert first.json() == {"received": 1, "duplicates": 0}
    assert second.status_code == 200 and second.json() == {"received": 0, "duplicates": 1}
    with scopes_disabled():
        assert InboundMessage.objects.count() == 1
    assert queue.size() == 1


# --- Telegram ------------------------------------------------------------------------

def test_telegram_update_with_the_secret_is_stored_and_enqueued(anon_client, tg_a, queue,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_telegram(anon_client, tg_a.pk, tg_update(5550001, "Halo", update_id=10, message_id=7),
                                 secret=TG_SECRET_A)
    assert response.status_code == 200 and response.json() == {"received": 1, "duplicates": 0}
    with scopes_disabled():
        row = InboundMessage.objects.get()
    assert (row.channel, row.external_id, row.user_id, row.text, row.kind) == ("telegram", "5550001:7", "5550001",
                                                                               "Halo", "text")
    assert queue.size() == 1


@pytest.mark.parametrize("secret,status,code", [
    (None, 401, "signature_missing"),
    ("wrong-secret", 403, "signature_invalid"),
    (TG_SECRET_B, 403, "signature_invalid"),  # tenant B's secret on tenant A's path
])
def test_telegram_bad_secret_is_refused_without_side_effects(anon_client, tg_a, tg_b, queue, secret, status, code,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_telegram(anon_client, tg_a.pk, tg_update(5550001, "Halo", update_id=10, message_id=7),
                                 secret=secret)
    assert_error(response, status, code)
    assert _nothing_stored() and queue.size() == 0


def test_telegram_duplicate_update_is_processed_once(anon_client, tg_a, queue, django_capture_on_commit_callbacks):
    update = tg_update(5550001, "Halo", update_id=10, message_id=7)
    with django_capture_on_commit_callbacks(execute=True):
        post_telegram(anon_client, tg_a.pk, update, secret=TG_SECRET_A)
        again = post_telegram(anon_client, tg_a.pk, update, secret=TG_SECRET_A)
    assert again.json() == {"received": 0, "duplicates": 1}
    assert queue.size() == 1


def test_telegram_updates_without_a_customer_message_are_acknowledged(anon_client, tg_a, queue):
    edited = {"update_id": 11, "edited_message": {"message_id": 7, "chat": {"id": 1, "type": "private"},
                                                  "date": 1700000000, "text": "x"}}
    from_bot = tg_update(5550001, "spam", update_id=12, message_id=8)
    from_bot["message"]["from"]["is_bot"] = True
    for update in (edited, from_bot):
        response = post_telegram(anon_client, tg_a.pk, update, secret=TG_SECRET_A)
        assert response.status_code == 200 and response.json()["received"] == 0
    assert_error(post_telegram(anon_client, tg_a.pk, {"message": {}}, secret=TG_SECRET_A), 400,
                 "invalid_webhook_payload")
    assert _nothing_stored() and queue.size() == 0


def test_webhooks_need_no_api_key_and_ignore_one(api_client, wa_a, tenant_b, queue):
    """A tenant B API key does not make a WhatsApp delivery for tenant A acceptable or not:
    only the signature counts."""
    client = api_client(tenant_b.test_key)
    response = post_whatsapp(client, wa_a.pk, _payload(), app_secret=APP_SECRET_B)
    assert_error(response, 403, "signature_invalid")
    assert _nothing_stored()


def test_schema_documents_the_routes_and_webhooks_need_no_api_key(anon_client):
    schema = anon_client.get("/api/schema", {"format": "json"}, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert paths["/channels/whatsapp/{tenant_id}/webhook"]["post"]["security"] == [{}]
    assert paths["/channels/telegram/{tenant_id}/webhook"]["post"]["security"] == [{}]
    assert "post" in paths["/conversations/{id}/reply"] and "post" in paths["/conversations/{id}/handoff"]
