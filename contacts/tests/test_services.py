"""Services on the embedded PostgreSQL: the chat-facing contracts, upsert, merge, delete."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_scopes import scopes_disabled

from agent_project.errors import ApiError
from contacts.models import Contact, ContactDeletion, ContactIdentity, ContactLog, ContactMerge
from contacts.services import contact_delete, contact_for_channel, contact_log_record, contact_merge, contact_upsert
from contacts.services.upsert import contact_update
from conversations.models import Conversation, Message
from followups.models import FollowUp


def _count(model, **filters):
    with scopes_disabled():
        return model.objects.filter(**filters).count()


# --- contact_for_channel -----------------------------------------------------------

def test_contact_for_channel_creates_once_and_marks_seen(tenant_a):
    first = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="6281234567890", name="Budi")
    seen = first.last_seen_at
    again = contact_for_channel(tenant=tenant_a, channel="WhatsApp", external_id=" 6281234567890 ", name="Other")
    assert again.pk == first.pk
    assert again.name == "Budi"  # a known name is not overwritten by a channel's display name
    assert again.last_seen_at >= seen
    assert again.first_seen_at == first.first_seen_at
    assert _count(Contact, tenant=tenant_a) == 1
    assert _count(ContactIdentity, tenant=tenant_a, channel="whatsapp", external_id="6281234567890") == 1


def test_contact_for_channel_joins_the_contact_with_that_phone(tenant_a):
    imported = contact_upsert(tenant=tenant_a, data={"name": "Siti", "phone": "0812-1111-2222"}).contact
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="6281211112222",
                                  phone="6281211112222")
    assert contact.pk == imported.pk
    assert contact.last_seen_at is not None


def test_contact_for_channel_ignores_an_unparseable_phone(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u-1", phone="12")
    assert contact.phone is None


def test_contact_for_channel_is_per_tenant(tenant_a, tenant_b):
    a = contact_for_channel(tenant=tenant_a, channel="telegram", external_id="42")
    b = contact_for_channel(tenant=tenant_b, channel="telegram", external_id="42")
    assert a.pk != b.pk and a.tenant_id == "tenant-a" and b.tenant_id == "tenant-b"


def test_seen_dates_only_widen(tenant_a):
    now = timezone.now()
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u-2", at=now)
    # A late-delivered older message: last seen stays, first seen moves back to it.
    contact_for_channel(tenant=tenant_a, channel="web", external_id="u-2", at=now - timedelta(hours=1))
    contact.refresh_from_db()
    assert contact.last_seen_at == now
    assert contact.first_seen_at == now - timedelta(hours=1)
    contact_for_channel(tenant=tenant_a, channel="web", external_id="u-2", at=now + timedelta(minutes=1))
    contact.refresh_from_db()
    assert contact.last_seen_at == now + timedelta(minutes=1)
    assert contact.first_seen_at == now - timedelta(hours=1)


# --- contact_log_record ---------------------------------------------------------------

def test_log_record_is_idempotent_on_external_message_id(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628")
    first = contact_log_record(tenant=tenant_a, contact=contact, role="user", content="Halo", channel="whatsapp",
                               external_message_id="wamid.1")
    again = contact_log_record(tenant=tenant_a, contact=contact, role="user", content="Halo (redelivered)",
                               channel="whatsapp", external_message_id="wamid.1")
    assert first.was_created and not again.was_created
    assert again.pk == first.pk and again.content == "Halo"
    # Without an id every call is a new line; the same id in another tenant is another message.
    contact_log_record(tenant=tenant_a, contact=contact, role="assistant", content="Ya?", channel="whatsapp")
    contact_log_record(tenant=tenant_a, contact=contact, role="assistant", content="Ya?", channel="whatsapp")
    assert _count(ContactLog, contact=contact) == 3


def test_same_message_id_in_two_tenants_is_two_rows(tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        contact = contact_for_channel(tenant=tenant, channel="whatsapp", external_id="628")
        log = contact_log_record(tenant=tenant, contact=contact, role="user", content="x", channel="whatsapp",
                                 external_message_id="wamid.same")
        assert log.was_created


def test_log_record_rejects_unknown_role(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u")
    with pytest.raises(ApiError) as info:
        contact_log_record(tenant=tenant_a, contact=contact, role="bot", content="x", channel="web")
    assert info.value.code == "invalid_role"
    assert _count(ContactLog, contact=contact) == 0


def test_user_message_updates_last_seen(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u")
    later = timezone.now() + timedelta(minutes=5)
    contact_log_record(tenant=tenant_a, contact=contact, role="assistant", content="a", channel="web", at=later)
    contact.refresh_from_db()
    assert contact.last_seen_at < later  # the agent speaking is not the customer being seen
    contact_log_record(tenant=tenant_a, contact=contact, role="user", content="b", channel="web", at=later)
    contact.refresh_from_db()
    assert contact.last_seen_at == later


# --- contact_upsert --------------------------------------------------------------------

def test_upsert_matches_every_spelling_of_a_phone(tenant_a):
    created = contact_upsert(tenant=tenant_a, data={"name": "Budi", "phone": "0812-3456-7890"})
    assert created.created
    for spelling in ("6281234567890", "+62 812-3456-7890", "081234567890"):
        result = contact_upsert(tenant=tenant_a, data={"phone": spelling, "tags": [spelling]})
        assert not result.created and result.contact.pk == created.contact.pk
        assert result.matched_by == ["phone"]
    contact = result.contact
    assert contact.phone == "+6281234567890"
    assert contact.tags == ["6281234567890", "+62 812-3456-7890", "081234567890"]  # tags accumulate
    assert _count(Contact, tenant=tenant_a) == 1


def test_upsert_matches_by_email_case_insensitively_and_by_external_id(tenant_a):
    first = contact_upsert(tenant=tenant_a, data={"email": "Budi@Example.com", "attributes": {"city": "Bandung"}})
    second = contact_upsert(tenant=tenant_a, data={"email": " budi@example.COM", "external_ids": {"telegram": "77"},
                                                   "attributes": {"plan": "gold"}})
    assert second.contact.pk == first.contact.pk and second.matched_by == ["email"]
    assert second.contact.attributes == {"city": "Bandung", "plan": "gold"}
    third = contact_upsert(tenant=tenant_a, data={"external_ids": {"telegram": "77"}, "phone": "0812 9999 0000"})
    assert third.contact.pk == first.contact.pk and third.matched_by == ["external_id:telegram"]
    assert third.contact.phone == "+6281299990000"


def test_upsert_conflict_names_both_contacts_and_changes_nothing(tenant_a):
    by_phone = contact_upsert(tenant=tenant_a, data={"name": "A", "phone": "081234567890"}).contact
    by_email = contact_upsert(tenant=tenant_a, data={"name": "B", "email": "b@example.com"}).contact
    with pytest.raises(ApiError) as info:
        contact_upsert(tenant=tenant_a, data={"name": "C", "phone": "+6281234567890", "email": "B@example.com"})
    assert info.value.status_code == 409 and info.value.code == "contact_conflict"
    assert info.value.details["contact_ids"] == sorted([by_phone.pk, by_email.pk])
    by_phone.refresh_from_db()
    by_email.refresh_from_db()
    assert (by_phone.name, by_email.name) == ("A", "B")
    assert _count(Contact, tenant=tenant_a) == 2


def test_upsert_rejects_invalid_phone_and_needs_a_key(tenant_a):
    with pytest.raises(ApiError) as info:
        contact_upsert(tenant=tenant_a, data={"phone": "0812"})
    assert (info.value.status_code, info.value.code) == (422, "invalid_phone")
    with pytest.raises(ApiError) as info:
        contact_upsert(tenant=tenant_a, data={"name": "Nobody"})
    assert info.value.code == "contact_key_required"
    assert _count(Contact, tenant=tenant_a) == 0


def test_default_phone_region_comes_from_the_tenant_locale(make_tenant):
    london = make_tenant("london-shop", locale="en-GB")
    contact = contact_upsert(tenant=london, data={"phone": "020 7031 3000"}).contact
    assert contact.phone == "+442070313000"


def test_update_refuses_a_phone_another_contact_has(tenant_a):
    a = contact_upsert(tenant=tenant_a, data={"phone": "081200000001"}).contact
    b = contact_upsert(tenant=tenant_a, data={"phone": "081200000002", "name": "B"}).contact
    with pytest.raises(ApiError) as info:
        contact_update(contact=b, data={"phone": "+6281200000001", "name": "changed"})
    assert info.value.code == "contact_duplicate" and info.value.details["contact_id"] == a.pk
    b.refresh_from_db()
    assert (b.phone, b.name) == ("+6281200000002", "B")


# --- concurrency: the database decides, many threads make one row -------------------

def _race(n, work):
    """Run ``work()`` in n threads released at once; returns results and errors."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection; the test database must be droppable

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_many_threads_on_one_channel_identity_make_one_contact(tenant_a):
    results, errors = _race(12, lambda: contact_for_channel(
        tenant=tenant_a, channel="whatsapp", external_id="6281234567890", phone="6281234567890").pk)
    assert errors == []
    assert len(set(results)) == 1
    assert _count(Contact, tenant=tenant_a) == 1
    assert _count(ContactIdentity, tenant=tenant_a) == 1


@pytest.mark.django_db(transaction=True)
def test_many_threads_upserting_one_phone_make_one_contact(tenant_a):
    spellings = ["0812-3456-7890", "6281234567890", "+62 812-3456-7890", "081234567890"]
    counter = iter(range(100))
    lock = threading.Lock()

    def work():
        with lock:
            i = next(counter)
        return contact_upsert(tenant=tenant_a, data={"phone": spellings[i % 4], "tags": [f"t{i}"]})

    results, errors = _race(12, work)
    assert errors == []
    assert sum(r.created for r in results) == 1
    assert len({r.contact.pk for r in results}) == 1
    with scopes_disabled():
        contact = Contact.objects.get(tenant=tenant_a)
    assert sorted(contact.tags) == sorted(f"t{i}" for i in range(12))  # no update was lost


@pytest.mark.django_db(transaction=True)
def test_many_threads_recording_one_message_store_it_once(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628")
    results, errors = _race(10, lambda: contact_log_record(
        tenant=tenant_a, contact=contact, role="user", content="Halo", channel="whatsapp",
        external_message_id="wamid.race"))
    assert errors == []
    assert len({log.pk for log in results}) == 1
    assert sum(log.was_created for log in results) == 1
    assert _count(ContactLog, tenant=tenant_a) == 1


# --- merge -----------------------------------------------------------------------------

def _with_history(tenant, external_id, n, **data):
    contact = contact_for_channel(tenant=tenant, channel="whatsapp", external_id=external_id)
    if data:
        contact = contact_update(contact=contact, data=data)
    for i in range(n):
        contact_log_record(tenant=tenant, contact=contact, role="user" if i % 2 == 0 else "assistant",
                           content=f"{external_id} #{i}", channel="whatsapp", external_message_id=f"{external_id}-{i}")
    return contact


def test_merge_moves_every_log_and_identity_and_combines_fields(tenant_a):
    target = _with_history(tenant_a, "6281100000001", 3, name="Budi", tags=["vip"], attributes={"city": "Bandung"})
    source = _with_history(tenant_a, "6281100000002", 5, email="budi@example.com", tags=["reseller"],
                           attributes={"city": "Jakarta", "size": "L"}, opted_out=True)
    with scopes_disabled():
        before = set(ContactLog.objects.filter(tenant=tenant_a).values_list("pk", "content", "at"))

    merge = contact_merge(target=target, source=source, actor="test")

    target.refresh_from_db()
    with scopes_disabled():
        after = set(ContactLog.objects.filter(tenant=tenant_a).values_list("pk", "content", "at"))
        assert after == before  # nothing lost, nothing altered
        assert set(ContactLog.objects.values_list("contact_id", flat=True).filter(tenant=tenant_a)) == {target.pk}
        assert sorted(ContactIdentity.objects.filter(contact=target).values_list("external_id", flat=True)) == [
            "6281100000001", "6281100000002"]
        assert not Contact.objects.filter(pk=source.pk).exists()
        assert ContactMerge.objects.get(pk=merge.pk).source_contact_id == source.pk
    assert merge.moved == {"contacts.ContactIdentity.contact": 1, "contacts.ContactLog.contact": 5}
    assert target.name == "Budi" and target.email == "budi@example.com"
    assert target.tags == ["vip", "reseller"]
    assert target.attributes == {"city": "Bandung", "size": "L"}
    assert target.opted_out is True  # one opt-out is enough to stop follow-ups
    # The source's channel identity now finds the merged contact.
    assert contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="6281100000002").pk == target.pk


def test_merge_takes_the_sources_phone_when_the_target_has_none(tenant_a):
    target = contact_upsert(tenant=tenant_a, data={"email": "x@example.com"}).contact
    source = contact_upsert(tenant=tenant_a, data={"phone": "081234567890"}).contact
    contact_merge(target=target, source=source)
    target.refresh_from_db()
    assert (target.phone, target.email) == ("+6281234567890", "x@example.com")


def test_merge_moves_rows_of_every_relation_pointing_at_contact(tenant_a, scoped):
    """Walks Contact._meta.related_objects: whatever app added a foreign key is covered."""
    target = contact_for_channel(tenant=tenant_a, channel="web", external_id="t")
    source = contact_for_channel(tenant=tenant_a, channel="web", external_id="s")
    with scoped(tenant_a):
        made = _rows_pointing_at(tenant_a, source)
        _conversation_and_follow_up(tenant_a, target, "t")
    merge = contact_merge(target=target, source=source)
    assert merge.moved["conversations.Conversation.contact"] == 1
    assert merge.moved["followups.FollowUp.contact"] == 1
    for rel in Contact._meta.related_objects:
        if rel.many_to_many:
            continue
        manager = rel.related_model._base_manager
        assert not manager.filter(**{rel.field.name: source.pk}).exists(), rel
    for model, field_name, pks in made:
        assert set(model._base_manager.filter(pk__in=pks).values_list(field_name, flat=True)) == {target.pk}
    assert Conversation._base_manager.filter(contact=target).count() == 2
    assert FollowUp._base_manager.filter(contact=target).count() == 2
    assert Message._base_manager.filter(conversation__contact=target).count() == 2


def _rows_pointing_at(tenant, contact):
    """A row for each relation the project has: ours and those of other apps."""
    made = []
    ident = ContactIdentity.objects.create(tenant=tenant, contact=contact, channel="sms", external_id="s-2")
    made.append((ContactIdentity, "contact_id", [ident.pk]))
    log = contact_log_record(tenant=tenant, contact=contact, role="system", content="x", channel="web")
    made.append((ContactLog, "contact_id", [log.pk]))
    conversation, follow_up = _conversation_and_follow_up(tenant, contact, "s")
    made.append((type(conversation), "contact_id", [conversation.pk]))
    made.append((type(follow_up), "contact_id", [follow_up.pk]))
    return made


def _conversation_and_follow_up(tenant, contact, user_id):
    """Rows of the conversations and follow-ups apps that point at ``contact``."""
    conversation = Conversation.objects.create(tenant=tenant, channel="web", user_id=user_id, contact=contact)
    Message.objects.create(tenant=tenant, conversation=conversation, role="user", content=f"alamat {user_id}")
    now = timezone.now()
    follow_up = FollowUp.objects.create(tenant=tenant, contact=contact, conversation=conversation, channel="log",
                                        user_id=user_id, message="Halo", scheduled_at=now, next_attempt_at=now)
    return conversation, follow_up


def test_every_relation_to_contact_is_one_the_merge_test_builds():
    """A new foreign key to Contact must be added to _rows_pointing_at, so the merge test covers it."""
    built = {"contacts.ContactIdentity", "contacts.ContactLog", "conversations.Conversation", "followups.FollowUp"}
    assert {rel.related_model._meta.label for rel in Contact._meta.related_objects} == built


def test_merge_refuses_itself(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="s")
    with pytest.raises(ApiError) as info:
        contact_merge(target=contact, source=contact)
    assert info.value.code == "merge_same_contact"


# --- delete ----------------------------------------------------------------------------

def test_delete_removes_personal_data_and_logs_and_records_it(tenant_a, scoped):
    contact = _with_history(tenant_a, "6281300000001", 4, name="Rahasia", email="rahasia@example.com")
    keep = _with_history(tenant_a, "6281300000002", 2)
    with scoped(tenant_a):
        conversation, follow_up = _conversation_and_follow_up(tenant_a, contact, "6281300000001")
        kept_conversation, _ = _conversation_and_follow_up(tenant_a, keep, "6281300000002")
    contact_id = contact.pk

    record = contact_delete(contact=contact, actor="key:abc", reason="data subject request")

    with scopes_disabled():
        assert not Contact.objects.filter(pk=contact_id).exists()
        assert not ContactLog.objects.filter(contact_id=contact_id).exists()
        assert not ContactIdentity.objects.filter(external_id="6281300000001").exists()
        # The chat history with that person goes too, although Conversation.contact is SET_NULL.
        assert not Conversation.objects.filter(pk=conversation.pk).exists()
        assert not Message.objects.filter(conversation_id=conversation.pk).exists()
        assert not FollowUp.objects.filter(pk=follow_up.pk).exists()
        # Other contacts keep everything.
        assert ContactLog.objects.filter(contact=keep).count() == 2
        assert Message.objects.filter(conversation=kept_conversation).count() == 1
        stored = ContactDeletion.objects.get(pk=record.pk)
    assert stored.contact_id == contact_id and stored.actor == "key:abc"
    assert stored.removed["contacts.ContactLog"] == 4 and stored.removed["contacts.Contact"] == 1
    assert stored.removed["conversations.Conversation"] == 1 and stored.removed["conversations.Message"] == 1
    assert stored.removed["followups.FollowUp"] == 1
    # The record itself holds no personal data.
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(d)::text FROM contacts_contactdeletion d WHERE id = %s", [record.pk])
        row = cursor.fetchone()[0]
    for secret in ("Rahasia", "rahasia@example.com", "6281300000001"):
        assert secret not in row
