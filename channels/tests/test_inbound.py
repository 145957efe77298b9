"""An inbound message through the whole path: webhook → queue → task (run as a worker
runs it) → contact, conversation, chat pipeline (offline provider, real database) →
bubbles sent in order to the fake platform; handoff in and out with the bot silent."""

from __future__ import annotations

import json

import pytest
from django_scopes import scopes_disabled

from channels.models import HandoffEvent, InboundMessage
from channels.tasks import inbound_process
from channels.tests.conftest import APP_SECRET_A, TG_SECRET_A
from channels.tests.fakes import tg_update, wa_image, wa_text, wa_webhook
from channels.tests.support import post_telegram, post_whatsapp, signature_ok
from contacts.models import Contact, ContactLog
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db

WA_ID = "6281234567890"


@pytest.fixture
def say_wa(anon_client, wa_a, fake_wa, queue, django_capture_on_commit_callbacks):
    """The customer writes on WhatsApp; the queued work runs. Answers the task results."""
    counter = iter(range(1, 10_000))

    def say(text=None, *, message=None, message_id=None):
        message = message or wa_text(WA_ID, text, message_id or f"wamid.IN{next(counter)}")
        fake_wa.customer_wrote(WA_ID)
        with django_capture_on_commit_callbacks(execute=True):
            response = post_whatsapp(anon_client, wa_a.pk, wa_webhook(phone_number_id=fake_wa_number(),
                                                                       messages=[message]), app_secret=APP_SECRET_A)
            assert response.status_code == 200, response.content
        return queue.run_all()

    return say


def fake_wa_number():
    from channels.tests.conftest import WA_NUMBER_A

    return WA_NUMBER_A


def _conversation(tenant, channel="whatsapp", user_id=WA_ID):
    with scopes_disabled():
        return Conversation.objects.get(tenant=tenant, channel=channel, user_id=user_id)


def _assistant_messages(conversation):
    with scopes_disabled():
        return list(conversation.messages.filter(role="assistant").order_by("id"))


def test_whatsapp_reply_bubbles_arrive_in_order(kb, wa_a, fake_wa, say_wa):
    kb(wa_a)
    results = say_wa("Jam buka toko hari ini sampai jam berapa dan alamatnya di mana?")
    assert results == [("channels.tasks.inbound_process", "replied")]
    conversation = _conversation(wa_a)
    [reply] = _assistant_messages(conversation)
    assert len(reply.bubbles) >= 2  # the offline answer is longer than one WhatsApp bubble (320 chars)
    assert fake_wa.texts(WA_ID) == reply.bubbles
    assert all(m["to"] == WA_ID and m["phone_number_id"] == fake_wa_number() for m in fake_wa.sent)
    assert "08.00" in " ".join(reply.bubbles)
    with scopes_disabled():
        contact = Contact.objects.get(tenant=wa_a)
        inbound = InboundMessage.objects.get()
        logs = list(ContactLog.objects.filter(contact=contact).values_list("role", flat=True))
    assert contact.phone == "+6281234567890" and contact.name == "Budi"
    assert conversation.contact_id == contact.pk and conversation.status == "bot"
    assert (inbound.status, inbound.outcome, inbound.conversation_id) == ("done", "replied", conversation.pk)
    assert sorted(logs) == ["assistant", "user"]


def test_a_customer_writing_english_on_whatsapp_is_answered_in_english(kb, wa_a, fake_wa, say_wa):
    # the tenant's locale is id-ID; a WhatsApp message names no locale, so the customer's language decides
    kb(wa_a)
    assert say_wa("What time do you open?") == [("channels.tasks.inbound_process", "replied")]
    [reply] = _assistant_messages(_conversation(wa_a))
    assert fake_wa.texts(WA_ID)[0].startswith("Here is what I found in"), fake_wa.texts(WA_ID)
    assert "08.00" in " ".join(reply.bubbles)


@pytest.mark.parametrize("said,notice", [("Is the shop open today?", "Sorry, our system is busy."),
                                         ("Tokonya hari ini buka?", "Maaf, sistem kami sedang sibuk.")])
def test_when_the_model_fails_the_customer_is_told_in_their_language(kb, wa_a, fake_wa, say_wa, monkeypatch,
                                                                    said, notice):
    from agent_project.errors import ApiError
    from channels import inbound

    def down(prepared):
        raise ApiError(503, "llm_unavailable", "The language model is unavailable.")

    monkeypatch.setattr(inbound, "chat_complete", down)
    kb(wa_a)
    assert say_wa(said) == [("channels.tasks.inbound_process", "llm_unavailable")]
    assert fake_wa.texts(WA_ID)[0].startswith(notice), fake_wa.texts(WA_ID)


def test_a_repeated_task_run_does_not_process_twice(kb, wa_a, fake_wa, say_wa):
    kb(wa_a)
    say_wa("Jam buka toko?", message_id="wamid.SAME")
    sent = len(fake_wa.sent)
    with scopes_disabled():
        inbound = InboundMessage.objects.get()
    assert inbound_process(inbound.pk) == "duplicate"  # e.g. the broker redelivered the task
    assert say_wa("Jam buka toko?", message_id="wamid.SAME") == []  # the platform redelivered the webhook
    assert len(fake_wa.sent) == sent
    with scopes_disabled():
        assert Message.objects.filter(role="user").count() == 1
        assert InboundMessage.objects.get().attempts == 1


def test_handoff_in_and_out_with_the_bot_silent_in_between(kb, wa_a, fake_wa, say_wa, client_a, hooked, receiver,
                                                           queue, django_capture_on_commit_callbacks):
    kb(hooked(wa_a))
    say_wa("Jam buka toko?")
    answered = len(fake_wa.sent)

    # the customer asks for a person
    assert say_wa("Saya mau bicara dengan admin") == [("channels.tasks.inbound_process", "handoff"),
                                                      ("channels.tasks.handoff_event_deliver", "sent")]
    conversation = _conversation(wa_a)
    assert conversation.status == "human"
    notice = fake_wa.texts(WA_ID)[answered:]
    assert len(notice) == 1 and "tim kami" in notice[0]
    [(headers, body)] = receiver.received
    event = json.loads(body)
    assert signature_ok(wa_a.webhook_secret, headers, body)
    assert headers["X-Layan-Event"] == "conversation.handoff"
    assert (event["conversation_id"], event["from_status"], event["status"], event["reason"]) == (
        conversation.pk, "bot", "human", "customer_request")

    # while a human has it, the bot says nothing, whatever the customer writes
    before = len(fake_wa.sent)
    assert say_wa("Halo? Jam buka toko?") == [("channels.tasks.inbound_process", "silent_human")]
    assert say_wa(message=wa_image(WA_ID, "wamid.IMG1")) == [("channels.tasks.inbound_process", "silent_human")]
    assert len(fake_wa.sent) == before
    with scopes_disabled():
        assert list(conversation.messages.filter(role="user").values_list("content", flat=True))[-2:] == [
            "Halo? Jam buka toko?", "[image]"]

    # the operator answers on the channel, then hands back to the bot
    with django_capture_on_commit_callbacks(execute=True):
        reply = client_a.post(f"/conversations/{conversation.pk}/reply", {"text": "Halo Kak, saya Rina dari toko."},
                              format="json")
    assert reply.status_code == 201, reply.content
    assert fake_wa.texts(WA_ID)[-1] == "Halo Kak, saya Rina dari toko."
    with django_capture_on_commit_callbacks(execute=True):
        back = client_a.post(f"/conversations/{conversation.pk}/handoff", {"status": "bot"}, format="json")
    assert back.status_code == 200 and back.json()["status"] == "bot" and back.json()["customer_notified"] is True
    assert "asisten otomatis" in fake_wa.texts(WA_ID)[-1]
    assert [r[1] for r in queue.run_all()] == ["sent"]
    assert [json.loads(b)["status"] for _, b in receiver.received] == ["human", "bot"]

    # and the bot answers again
    sent = len(fake_wa.sent)
    assert say_wa("Pengiriman gratis untuk pesanan berapa?") == [("channels.tasks.inbound_process", "replied")]
    assert len(fake_wa.sent) > sent
    with scopes_disabled():
        assert list(HandoffEvent.objects.order_by("id").values_list("from_status", "to_status", "reason")) == [
            ("bot", "human", "customer_request"), ("human", "bot", "operator")]  # the reply changed no status


def test_the_assistant_saying_it_cannot_help_hands_over(wa_a, fake_wa, say_wa):
    # an empty knowledge base: the offline provider says it does not know and offers the team
    assert say_wa("Apakah bisa pesan karangan bunga duka cita untuk besok pagi?") == [
        ("channels.tasks.inbound_process", "model_handoff")]
    conversation = _conversation(wa_a)
    assert conversation.status == "human"
    texts = fake_wa.texts(WA_ID)
    assert len(texts) == 2 and "tim kami" in texts[0] and "teruskan ke tim kami" in texts[1]
    with scopes_disabled():
        assert HandoffEvent.objects.get().reason == "model_cannot_help"


def test_a_tenant_that_does_not_hand_over_unanswered_questions_keeps_answering(wa_a, fake_wa, say_wa):
    from tenants.models import Tenant

    Tenant.objects.filter(pk=wa_a.pk).update(handoff_on_unanswered=False)
    assert say_wa("Apakah bisa pesan karangan bunga duka cita untuk besok pagi?") == [
        ("channels.tasks.inbound_process", "replied")]
    assert _conversation(wa_a).status == "bot"
    assert "tim kami" in fake_wa.texts(WA_ID)[0] and len(fake_wa.texts(WA_ID)) == 1  # the reply, no notice
    assert say_wa("Halo?") == [("channels.tasks.inbound_process", "replied")]  # not silent
    with scopes_disabled():
        assert not HandoffEvent.objects.exists()


@pytest.mark.parametrize("hand_over", [False, True])
def test_yes_to_the_bots_offer_of_a_person_hands_over(wa_a, fake_wa, say_wa, hand_over):
    """The bot's "shall I connect you with our team?" must mean something: a short yes hands
    the conversation to a person even for a tenant that does not hand unanswered questions
    over (and, for one that does, the question already did)."""
    from tenants.models import Tenant

    Tenant.objects.filter(pk=wa_a.pk).update(handoff_on_unanswered=hand_over, handoff_resume_minutes=None)
    say_wa("Apakah bisa pesan karangan bunga duka cita untuk besok pagi?")
    if hand_over:
        assert _conversation(wa_a).status == "human"
        assert say_wa("iya boleh") == [("channels.tasks.inbound_process", "silent_human")]
        return
    assert _conversation(wa_a).status == "bot"
    assert say_wa("Iya, boleh kak") == [("channels.tasks.inbound_process", "handoff")]
    assert _conversation(wa_a).status == "human"
    with scopes_disabled():
        assert HandoffEvent.objects.get().reason == "customer_request"
    assert "tim" in fake_wa.texts(WA_ID)[-1]  # the hand-over notice


def test_yes_to_an_answer_is_just_a_message(kb, wa_a, fake_wa, say_wa):
    from tenants.models import Tenant

    Tenant.objects.filter(pk=wa_a.pk).update(handoff_on_unanswered=False)  # the offline model can't chat back
    kb(wa_a)
    assert say_wa("Jam buka toko?") == [("channels.tasks.inbound_process", "replied")]
    assert say_wa("ok kak") == [("channels.tasks.inbound_process", "replied")]
    assert _conversation(wa_a).status == "bot"


@pytest.mark.parametrize("minutes_ago, outcome", [(45, "replied"), (10, "silent_human")])
def test_a_conversation_no_operator_answered_goes_back_to_the_bot(kb, wa_a, fake_wa, say_wa, minutes_ago, outcome):
    from datetime import timedelta

    from django.utils import timezone

    kb(wa_a)
    assert say_wa("Saya mau bicara dengan admin") == [("channels.tasks.inbound_process", "handoff")]
    conversation = _conversation(wa_a)
    with scopes_disabled():
        Conversation.objects.filter(pk=conversation.pk).update(created_at=timezone.now() - timedelta(days=1))
        HandoffEvent.objects.update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    sent = len(fake_wa.sent)
    assert say_wa("Jam buka toko?") == [("channels.tasks.inbound_process", outcome)]
    texts = fake_wa.texts(WA_ID)[sent:]
    if outcome == "replied":
        assert "belum sempat membalas" in texts[0] and "08.00" in " ".join(texts[1:])
        assert _conversation(wa_a).status == "bot"
        with scopes_disabled():
            assert HandoffEvent.objects.latest("id").reason == "no_operator_reply"
    else:
        assert texts == [] and _conversation(wa_a).status == "human"


def test_media_gets_a_polite_reply_and_is_logged(wa_a, fake_wa, say_wa):
    assert say_wa(message=wa_image(WA_ID, "wamid.IMG")) == [("channels.tasks.inbound_process", "media_reply")]
    assert fake_wa.texts(WA_ID) == ["Maaf, saat ini kami hanya dapat membaca pesan teks. Mohon tuliskan pertanyaan "
                                    "Anda, ya."]
    with scopes_disabled():
        assert InboundMessage.objects.get().kind == "image"
        log = ContactLog.objects.filter(role="user").get()
    assert log.content == "[image]" and log.external_message_id == "wamid.IMG"


def test_a_closed_conversation_is_reopened_for_the_bot(kb, wa_a, fake_wa, say_wa):
    kb(wa_a)
    say_wa("Jam buka toko?")
    conversation = _conversation(wa_a)
    with scopes_disabled():
        Conversation.objects.filter(pk=conversation.pk).update(status="closed")
    assert say_wa("Alamat toko di mana?") == [("channels.tasks.inbound_process", "replied")]
    assert _conversation(wa_a).status == "bot"
    with scopes_disabled():
        assert HandoffEvent.objects.get().reason == "customer_message"


def test_a_throttled_bubble_is_retried_and_order_kept(kb, wa_a, fake_wa, say_wa):
    kb(wa_a)
    fake_wa.fail_next(400, 130429, "(#130429) Rate limit hit")
    assert say_wa("Jam buka toko hari ini sampai jam berapa dan alamatnya di mana?") == [
        ("channels.tasks.inbound_process", "replied")]
    [reply] = _assistant_messages(_conversation(wa_a))
    assert fake_wa.texts(WA_ID) == reply.bubbles


def test_a_permanent_send_failure_stops_and_is_recorded(kb, wa_a, fake_wa, say_wa):
    kb(wa_a)
    fake_wa.fail_next(400, 131026, "Message Undeliverable")
    assert say_wa("Jam buka toko?") == [("channels.tasks.inbound_process", "send_failed")]
    assert fake_wa.texts() == []  # nothing after the failed first bubble
    with scopes_disabled():
        inbound = InboundMessage.objects.get()
    assert inbound.status == "failed" and "131026" in inbound.error


# --- Telegram -------------------------------------------------------------------------

def test_telegram_reply_bubbles_arrive_in_order(kb, anon_client, tg_a, fake_tg, queue,
                                                django_capture_on_commit_callbacks):
    kb(tg_a)
    fake_tg.add_chat(5550001)
    with django_capture_on_commit_callbacks(execute=True):
        post_telegram(anon_client, tg_a.pk, tg_update(5550001, "Jam buka toko dan alamatnya?", update_id=1,
                                                      message_id=1), secret=TG_SECRET_A)
    assert queue.run_all() == [("channels.tasks.inbound_process", "replied")]
    conversation = _conversation(tg_a, channel="telegram", user_id="5550001")
    [reply] = _assistant_messages(conversation)
    assert fake_tg.texts("5550001") == reply.bubbles and reply.bubbles
    assert all(m["chat_id"] == 5550001 for m in fake_tg.sent)


def test_telegram_handoff_keeps_the_bot_quiet(anon_client, tg_a, fake_tg, queue, django_capture_on_commit_callbacks):
    fake_tg.add_chat(5550001)
    updates = [tg_update(5550001, "hubungi admin", update_id=1, message_id=1),
               tg_update(5550001, "halo?", update_id=2, message_id=2),
               tg_update(5550001, None, update_id=3, message_id=3, extra={"sticker": {"file_id": "x"}})]
    outcomes = []
    for update in updates:
        with django_capture_on_commit_callbacks(execute=True):
            post_telegram(anon_client, tg_a.pk, update, secret=TG_SECRET_A)
        outcomes += [r for _, r in queue.run_all()]
    assert outcomes == ["handoff", "silent_human", "silent_human"]
    assert len(fake_tg.texts("5550001")) == 1
