"""The real outbound clients over HTTP against the local fake platforms: documented
request shapes, length limits, error codes mapped to retry or permanent, and
WhatsApp's 24-hour window (free text inside it, the template outside, refusal without one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_project.lib import http
from channels import services, telegram, whatsapp
from channels.base import InboundItem
from channels.inbound import inbound_record
from channels.tests.conftest import TG_TOKEN_A, WA_NUMBER_A, WA_TOKEN_A

pytestmark = pytest.mark.django_db
WA_ID = "6281234567890"


@pytest.fixture
def wa_client(fake_wa):
    fake_wa.add_number(WA_NUMBER_A, WA_TOKEN_A)
    with http.client(timeout=5) as client:
        yield whatsapp.WhatsAppClient(phone_number_id=WA_NUMBER_A, access_token=WA_TOKEN_A, base_url=fake_wa.url,
                                      version="v21.0", http_client=client)


@pytest.fixture
def tg_client(fake_tg):
    fake_tg.add_bot(TG_TOKEN_A)
    with http.client(timeout=5) as client:
        yield telegram.TelegramClient(bot_token=TG_TOKEN_A, base_url=fake_tg.url, http_client=client)


def test_whatsapp_text_request_shape(wa_client, fake_wa):
    fake_wa.customer_wrote(WA_ID)
    result = wa_client.send_text(to=WA_ID, text="Halo Kak!")
    assert result.ok and result.message_id.startswith("wamid.")
    [request] = fake_wa.requests
    assert request.path == f"/v21.0/{WA_NUMBER_A}/messages"
    assert request.headers["Authorization"] == f"Bearer {WA_TOKEN_A}"
    assert request.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID,
                            "type": "text", "text": {"preview_url": False, "body": "Halo Kak!"}}


def test_whatsapp_template_request_shape(wa_client, fake_wa):
    fake_wa.approve_template("followup_umum", "id")
    result = wa_client.send_template(to=WA_ID, name="followup_umum", language="id",
                                     body_parameters=["Pesanan Anda\nsudah siap."])
    assert result.ok
    assert fake_wa.requests[0].body["template"] == {
        "name": "followup_umum", "language": {"code": "id"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Pesanan Anda sudah siap."}]}]}


@pytest.mark.parametrize("setup,outcome,code", [
    (lambda fake: None, "permanent", "131047"),  # the customer never wrote: outside the window
    (lambda fake: fake.customer_wrote(WA_ID, datetime.now(tz=UTC) - timedelta(hours=25)), "permanent", "131047"),
    (lambda fake: (fake.customer_wrote(WA_ID), fake.fail_next(400, 130429, "(#130429) Rate limit hit")),
     "retry", "130429"),
    (lambda fake: (fake.customer_wrote(WA_ID), fake.fail_next(503, 131016, "Service unavailable")), "retry", "131016"),
    (lambda fake: (fake.customer_wrote(WA_ID), fake.fail_next(400, 131026, "Message undeliverable")),
     "permanent", "131026"),
])
def test_whatsapp_errors_map_to_retry_or_permanent(wa_client, fake_wa, setup, outcome, code):
    setup(fake_wa)
    result = wa_client.send_text(to=WA_ID, text="Halo")
    assert (result.outcome, result.code) == (outcome, code)


def test_whatsapp_bad_token_is_permanent(fake_wa):
    fake_wa.add_number(WA_NUMBER_A, WA_TOKEN_A)
    with http.client(timeout=5) as client:
        result = whatsapp.WhatsAppClient(phone_number_id=WA_NUMBER_A, access_token="wrong", base_url=fake_wa.url,
                                         version="v21.0", http_client=client).send_text(to=WA_ID, text="x")
    assert (result.outcome, result.code, result.status_code) == ("permanent", "190", 401)


def test_unreachable_platform_is_retried():
    import socket

    with socket.socket() as sock:  # a port nobody listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with http.client(timeout=2) as client:
        result = whatsapp.WhatsAppClient(phone_number_id=WA_NUMBER_A, access_token=WA_TOKEN_A,
                                         base_url=f"http://127.0.0.1:{port}", version="v21.0",
                                         http_client=client).send_text(to=WA_ID, text="x")
    assert result.outcome == "retry" and result.code == "unreachable"


def test_telegram_send_message_request_shape(tg_client, fake_tg):
    fake_tg.add_chat(5550001)
    result = tg_client.send_message(chat_id="5550001", text="Halo *Kak* _!_")
    assert result.ok and result.message_id == "100"
    [request] = fake_tg.requests
    assert request.path == f"/bot{TG_TOKEN_A}/sendMessage"
    assert request.body == {"chat_id": 5550001, "text": "Halo *Kak* _!_", "link_preview_options": {"is_disabled": True}}


@pytest.mark.parametrize("setup,outcome,code,retry_after", [
    (lambda fake: fake.fail_next(429, "Too Many Requests: retry after 3", retry_after=3), "retry", "429", 3.0),
    (lambda fake: fake.fail_next(502, "Bad Gateway"), "retry", "502", None),
    (lambda fake: None, "permanent", "400", None),  # chat not found: the customer never started the bot
    (lambda fake: fake.blocked.add("5550001"), "permanent", "403", None),
])
def test_telegram_errors_map_to_retry_or_permanent(tg_client, fake_tg, setup, outcome, code, retry_after):
    setup(fake_tg)
    result = tg_client.send_message(chat_id="5550001", text="Halo")
    assert (result.outcome, result.code, result.retry_after) == (outcome, code, retry_after)


def test_clients_refuse_what_the_platform_would(wa_client, tg_client):
    senders = (lambda t: wa_client.send_text(to=WA_ID, text=t), lambda t: tg_client.send_message(chat_id="1", text=t))
    for send in senders:
        with pytest.raises(ValueError):
            send("   ")
        with pytest.raises(ValueError):
            send("x" * 4097)


# --- delivery through the tenant's configuration -------------------------------------

def _customer_wrote(tenant, fake_wa, *, hours_ago: float):
    at = datetime.now(tz=UTC) - timedelta(hours=hours_ago)
    inbound_record(tenant=tenant, channel="whatsapp", item=InboundItem(
        external_id=f"wamid.{hours_ago}", user_id=WA_ID, kind="text", text="Halo", sent_at=at))
    fake_wa.customer_wrote(WA_ID, at)


def test_a_long_text_is_cut_to_the_platform_limit_in_order(wa_a, fake_wa):
    _customer_wrote(wa_a, fake_wa, hours_ago=1)
    paragraphs = [f"Paragraf {i}: " + "kata " * 300 for i in range(4)]  # ~1,500 characters each
    text = "\n\n".join(paragraphs)
    outcomes = services.channel_deliver(tenant=wa_a, channel="whatsapp", user_id=WA_ID, texts=[text])
    sent = fake_wa.texts(WA_ID)
    assert all(o.ok for o in outcomes) and len(sent) == len(outcomes) >= 2
    assert all(len(t) <= whatsapp.MAX_TEXT_CHARS for t in sent)
    assert " ".join(" ".join(sent).split()) == " ".join(text.split())


def test_free_text_outside_the_window_is_refused_before_calling_whatsapp(wa_a, fake_wa):
    _customer_wrote(wa_a, fake_wa, hours_ago=30)
    [outcome] = services.channel_deliver(tenant=wa_a, channel="whatsapp", user_id=WA_ID, texts=["Halo"])
    assert outcome.outcome == "permanent" and outcome.detail.startswith("whatsapp_window_closed")
    assert fake_wa.requests == []


def test_followup_inside_the_window_is_plain_text(wa_a, fake_wa):
    _customer_wrote(wa_a, fake_wa, hours_ago=2)
    result = services.channel_send_followup(tenant=wa_a, channel="whatsapp", user_id=WA_ID, text="Masih minat?")
    assert result.ok and fake_wa.sent[0]["type"] == "text"


def test_followup_outside_the_window_uses_the_configured_template(wa_a, fake_wa):
    services.channel_config_update(tenant=wa_a, data={"whatsapp": {"followup_template": "tindak_lanjut",
                                                                   "template_language": "id"}})
    fake_wa.approve_template("tindak_lanjut", "id")
    _customer_wrote(wa_a, fake_wa, hours_ago=48)
    result = services.channel_send_followup(tenant=wa_a, channel="whatsapp", user_id=WA_ID,
                                            text="Halo Budi,\nbuket Anda sudah siap diambil.")
    assert result.ok
    [sent] = fake_wa.sent
    assert sent["type"] == "template" and sent["template"]["name"] == "tindak_lanjut"
    assert sent["template"]["components"][0]["parameters"][0]["text"] == "Halo Budi, buket Anda sudah siap diambil."


def test_followup_outside_the_window_without_a_template_is_refused_clearly(wa_a, fake_wa):
    _customer_wrote(wa_a, fake_wa, hours_ago=48)
    result = services.channel_send_followup(tenant=wa_a, channel="whatsapp", user_id=WA_ID, text="Halo")
    assert result.outcome == "permanent"
    assert "no follow-up template is configured" in result.detail
    assert fake_wa.requests == []


def test_an_unapproved_template_fails_permanently(wa_a, fake_wa):
    services.channel_config_update(tenant=wa_a, data={"whatsapp": {"followup_template": "belum_disetujui"}})
    _customer_wrote(wa_a, fake_wa, hours_ago=48)
    result = services.channel_send_followup(tenant=wa_a, channel="whatsapp", user_id=WA_ID, text="Halo")
    assert (result.outcome, result.code) == ("permanent", "132001")


def test_delivery_on_an_unconfigured_channel_is_refused(tenant_a, fake_tg):
    [outcome] = services.channel_deliver(tenant=tenant_a, channel="telegram", user_id="1", texts=["x"])
    assert (outcome.outcome, outcome.code) == ("permanent", "channel_not_configured")
    assert fake_tg.requests == []


def test_telegram_flood_control_is_waited_out_inline(tg_a, fake_tg):
    fake_tg.add_chat(5550001)
    fake_tg.fail_next(429, "Too Many Requests: retry after 0", retry_after=0)
    outcomes = services.channel_deliver(tenant=tg_a, channel="telegram", user_id="5550001", texts=["Satu", "Dua"])
    assert [o.ok for o in outcomes] == [True, True]
    assert fake_tg.texts("5550001") == ["Satu", "Dua"]
    assert len(fake_tg.requests) == 3


def test_telegram_webhook_registration(tg_a, fake_tg):
    result = services.channel_telegram_register(tenant=tg_a, public_base_url="https://layan.example.com/")
    assert result.ok
    assert fake_tg.webhooks[TG_TOKEN_A] == {"url": "https://layan.example.com/channels/telegram/tenant-a/webhook",
                                            "secret_token": "tg-secret-tenant-a", "allowed_updates": ["message"]}


def test_a_single_giant_word_is_cut_inside_as_a_last_resort():
    pieces = services.fit_to_limit("https://example.com/" + "a" * 5000, "telegram")
    assert [len(p) for p in pieces] == [4096, 5020 - 4096]
    assert "".join(pieces) == "https://example.com/" + "a" * 5000
