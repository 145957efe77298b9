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


# --- a new customer's first turn ----------------------------------------------------------------

def first(tenant, user_id="628999", content="Halo, baru pertama", name="Rina", now=None):
    return store.first_turn(tenant=tenant, channel="whatsapp", user_id=user_id, content=content, name=name,
                            now=now or timezone.now())


def test_a_new_customers_first_turn_is_one_statement_with_every_row(tenant_a, scoped):
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        conversation, contact, message = first(tenant_a, now=now)
    assert len(queries.captured_queries) == 1
    assert (contact.name, contact.first_seen_at, contact.last_seen_at, contact.tenant_id) == ("Rina", now, now,
                                                                                              tenant_a.pk)
    assert (conversation.contact_id, conversation.status, conversation.last_message_at) == (contact.pk, "bot", now)
    with scoped(tenant_a):
        identity = contact.identities.get()
        assert (identity.channel, identity.external_id) == ("whatsapp", "628999")
        assert Message.objects.get(pk=message.pk).conversation_id == conversation.pk
        log = ContactLog.objects.get()
        assert (log.contact_id, log.conversation_id, log.role, log.at) == (contact.pk, conversation.pk, "user", now)
    # the next turn is a returning customer's
    conv, who, _, history = say(tenant_a, user_id="628999", content="lagi")
    assert (conv.pk, who.pk, history) == (conversation.pk, contact.pk, [("user", "Halo, baru pertama")])


def test_a_second_first_message_writes_nothing_more(tenant_a, scoped):
    assert first(tenant_a) is not None
    assert first(tenant_a) is None  # e.g. a concurrent first message: the ORM path reads what exists
    with scoped(tenant_a):
        assert (Contact.objects.count(), Conversation.objects.count(), Message.objects.count()) == (1, 1, 1)


def test_an_identity_made_elsewhere_is_left_to_the_orm_path(tenant_a, scoped):
    with scoped(tenant_a):
        contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628999", name="Imported")
    assert first(tenant_a) is None
    with scoped(tenant_a):
        assert (Contact.objects.count(), Conversation.objects.count(), Message.objects.count()) == (1, 0, 0)


def test_the_same_id_in_another_tenant_is_another_customer(tenant_a, tenant_b, scoped):
    _, contact_a, _ = first(tenant_a)
    _, contact_b, _ = first(tenant_b)
    assert contact_a.pk != contact_b.pk and contact_b.tenant_id == tenant_b.pk
    with scoped(tenant_a):
        assert Message.objects.count() == 1
