"""The one-statement turn writes (conversations/store.py) leave the same rows as the ORM path."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact, ContactLog
from contacts.services import contact_for_channel
from conversations import store
from conversations.models import Conversation, Message
from conversations.services import conversation_for

pytestmark = pytest.mark.django_db


def returning_customer(tenant, scoped, user_id="628111", name="", at=None):
    with scoped(tenant):
        contact = contact_for_channel(tenant=tenant, channel="whatsapp", external_id=user_id, name=name, at=at)
        conversation = conversation_for(tenant=tenant, channel="whatsapp", user_id=user_id, contact=contact)
        return contact, conversation


def say(tenant, user_id="628111", content="Halo", name="", now=None):
    return store.user_turn(tenant=tenant, channel="whatsapp", user_id=user_id, content=content, name=name,
                           now=now or timezone.now())


def test_a_returning_customers_turn_is_one_statement_with_every_row(tenant_a, scoped):
    earlier = timezone.now() - timedelta(hours=1)
    contact, conversation = returning_customer(tenant_a, scoped, at=earlier)
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        conv, who, message, history = say(tenant_a, content="Ada buket mawar?", name="Sari", now=now)
    assert len(queries.captured_queries) == 1
    assert (conv.pk, who.pk) == (conversation.pk, contact.pk) and history == []
    assert (conv.last_message_at, conv.status, conv.contact_id) == (now, "bot", contact.pk)
    assert (who.last_seen_at, who.first_seen_at, who.name) == (now, earlier, "Sari")  # blank name filled
    with scoped(tenant_a):
        stored = Message.objects.get(pk=message.pk)
        assert (stored.role, stored.content, stored.created_at, stored.bubbles, stored.conversation_id) == (
            "user", "Ada buket mawar?", now, [], conversation.pk)
        log = ContactLog.objects.get(contact=contact)
        assert (log.role, log.content, log.channel, log.at, log.conversation_id) == (
            "user", "Ada buket mawar?", "whatsapp", now, conversation.pk)
        assert Conversation.objects.get(pk=conversation.pk).last_message_at == now
        assert Contact.objects.get(pk=contact.pk).name == "Sari"


def test_history_is_the_turns_before_this_one_oldest_first(tenant_a, scoped):
    returning_customer(tenant_a, scoped)
    t0 = timezone.now()
    for i, text in enumerate(["satu", "dua", "tiga"]):
        *_, history = say(tenant_a, content=text, now=t0 + timedelta(seconds=i))
    assert history == [("user", "satu"), ("user", "dua")]
    with scoped(tenant_a):
        conversation = Conversation.objects.get()
        Message.objects.create(tenant=tenant_a, conversation=conversation, role="assistant", content="")  # skipped
    *_, history = say(tenant_a, content="empat", now=t0 + timedelta(seconds=5))
    assert [text for _, text in history] == ["satu", "dua", "tiga"]


def test_history_is_capped(tenant_a, scoped, monkeypatch):
    monkeypatch.setattr(store, "HISTORY_TURNS", 2)
    returning_customer(tenant_a, scoped)
    t0 = timezone.now()
    for i in range(4):
        *_, history = say(tenant_a, content=f"m{i}", now=t0 + timedelta(seconds=i))
    assert history == [("user", "m1"), ("user", "m2")]


def test_dates_never_move_backwards_and_a_set_name_stays(tenant_a, scoped):
    contact, _ = returning_customer(tenant_a, scoped, name="Budi")
    with scoped(tenant_a):
        seen = Contact.objects.get(pk=contact.pk).last_seen_at
    late = seen - timedelta(minutes=5)  # a delayed, older message
    _, who, _, _ = say(tenant_a, now=late, name="Someone else")
    assert (who.last_seen_at, who.name) == (seen, "Budi")
    assert who.first_seen_at == late


@pytest.mark.parametrize("case", ["new customer", "no conversation yet", "conversation bound to another contact"])
def test_anything_but_the_common_case_writes_nothing_and_falls_back(tenant_a, scoped, case):
    if case != "new customer":
        contact = returning_customer(tenant_a, scoped)[0] if case == "conversation bound to another contact" else None
        with scoped(tenant_a):
            if case == "no conversation yet":
                contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628111")
            else:
                other = Contact.objects.create(tenant=tenant_a, name="Other")
                Conversation.objects.filter(contact=contact).update(contact=other)
    with scoped(tenant_a):
        before = (Message.objects.count(), ContactLog.objects.count(),
                  list(Conversation.objects.values_list("last_message_at", flat=True)))
    assert say(tenant_a) is None
    with scoped(tenant_a):
        assert (Message.objects.count(), ContactLog.objects.count(),
                list(Conversation.objects.values_list("last_message_at", flat=True))) == before


def test_another_tenants_customer_with_the_same_id_is_untouched(tenant_a, tenant_b, scoped):
    returning_customer(tenant_a, scoped)
    contact_b, conversation_b = returning_customer(tenant_b, scoped)
    conv, who, _, _ = say(tenant_a, content="hanya A")
    assert conv.tenant_id == who.tenant_id == tenant_a.pk
    with scoped(tenant_b):
        assert Message.objects.count() == 0 and ContactLog.objects.count() == 0
        assert Conversation.objects.get(pk=conversation_b.pk).last_message_at is None


def test_the_reply_is_one_statement(tenant_a, scoped):
    contact, conversation = returning_customer(tenant_a, scoped)
    now = timezone.now()
    message = Message(tenant=tenant_a, conversation=conversation, role="assistant", content="Ada, Kak.",
                      bubbles=["Ada, Kak."], sources=[{"chunk_id": 1}], provider="offline", total_ms=3.5)
    with CaptureQueriesContext(connection) as queries:
        store.reply_turn(message=message, contact=contact, channel="whatsapp", now=now)
    assert len(queries.captured_queries) == 1
    with scoped(tenant_a):
        stored = Message.objects.get(pk=message.pk)
        assert (stored.bubbles, stored.sources, stored.total_ms, stored.created_at) == (
            ["Ada, Kak."], [{"chunk_id": 1}], 3.5, now)
        assert Conversation.objects.get(pk=conversation.pk).last_message_at == now
        assert ContactLog.objects.get(contact=contact).role == "assistant"
