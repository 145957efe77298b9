"""(Found in review, now fixed.) Races between a contact write and a concurrent erasure / chat message.

Each test opens the window deterministically: a hook runs the *other* request's work in a
second thread (its own database connection, its own committed transaction) at the point
where the request under test has loaded the contact but not yet written it - exactly what
two gunicorn workers do when the requests overlap.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_scopes import scopes_disabled

from conftest import assert_error
from contacts.services.chat import contact_log_record
from contacts.services.erasure import contact_delete
from contacts.services.upsert import contact_update, contact_upsert
from contacts.models import Contact, ContactDeletion, ContactIdentity, ContactLog

pytestmark = pytest.mark.django_db(transaction=True)

_REAL_DELETE = contact_delete  # the hooks below replace contacts.api.contact_delete


def _in_other_worker(fn):
    """Run fn in another thread with its own DB connection; re-raise its error."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc
        finally:
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _erase(tenant, pk):
    def go():
        with scopes_disabled():
            contact = Contact.objects.get(pk=pk)
        return _REAL_DELETE(contact=contact, actor="other-request", reason="PDP request")
    return _in_other_worker(go)


def _make(tenant, **data):
    return contact_upsert(tenant=tenant, data=data).contact


# --- PATCH: the row is read unlocked and written back whole (contact.save()) ---------------------

def test_patch_racing_an_erasure_resurrects_the_erased_personal_data(client_a, tenant_a, monkeypatch):
    """DELETE /contacts/{id} (a data-subject erasure) commits while a PATCH of the same contact is in
    flight: the PATCH's full save() finds no row to UPDATE and INSERTs it again, with the erased
    name, phone and e-mail. Expected: the PATCH answers 404 contact_not_found and the person stays erased."""
    contact = _make(tenant_a, name="Budi Santoso", phone="081234567890", email="budi@example.com")
    real = contact_update
    fired = []

    def update_after_the_erasure(*, contact, data):
        if not fired:
            fired.append(_erase(tenant_a, contact.pk))
        return real(contact=contact, data=data)

    monkeypatch.setattr("contacts.api.contact_update", update_after_the_erasure)
    client_a.raise_request_exception = False
    r = client_a.patch(f"/contacts/{contact.pk}", {"tags": ["vip"]}, format="json")

    with scopes_disabled():
        assert ContactDeletion.objects.filter(contact_id=contact.pk).count() == 1  # the erasure did happen
        ghost = Contact.objects.filter(pk=contact.pk).first()
    assert ghost is None, (f"erased contact is back: {ghost.name!r} {ghost.phone!r} {ghost.email!r}; "
                           f"PATCH answered {r.status_code}")
    assert_error(r, 404, "contact_not_found")


def test_patch_racing_a_chat_message_moves_last_seen_at_back(client_a, tenant_a, monkeypatch):
    """A customer message (contact_log_record / contact_for_channel -> _touch) sets last_seen_at while a
    PATCH that only changes the name is in flight: the PATCH's full save() writes the stale
    last_seen_at back. Expected: PATCH changes only the fields it was given."""
    contact = _make(tenant_a, name="Budi", phone="081234567890")
    old = timezone.now() - timedelta(days=30)
    with scopes_disabled():
        Contact.objects.filter(pk=contact.pk).update(last_seen_at=old)
    message_at = timezone.now()
    real = contact_update

    def update_after_a_message(*, contact, data):
        def chat_message():  # another worker, with its own copy of the row
            with scopes_disabled():
                fresh = Contact.objects.get(pk=contact.pk)
            return contact_log_record(tenant=tenant_a, contact=fresh, role="user",
                                               content="Halo, pesanan saya?", channel="whatsapp", at=message_at)

        _in_other_worker(chat_message)
        return real(contact=contact, data=data)

    monkeypatch.setattr("contacts.api.contact_update", update_after_a_message)
    r = client_a.patch(f"/contacts/{contact.pk}", {"name": "Budi Santoso"}, format="json")
    assert r.status_code == 200, r.content
    with scopes_disabled():
        stored = Contact.objects.get(pk=contact.pk)
        assert ContactLog.objects.filter(contact_id=contact.pk).count() == 1
    assert stored.name == "Budi Santoso"
    assert stored.last_seen_at == message_at, f"last_seen_at went back to {stored.last_seen_at} (message at {message_at})"


# --- requests that lose their contact to a concurrent erasure answer 500 -------------------------

def test_upsert_racing_an_erasure_is_not_a_500(client_a, tenant_a, monkeypatch):
    """POST /contacts matches contact X by phone; X is erased before the upsert locks it
    (Contact.objects.select_for_update().get(pk=...) in _upsert_once): DoesNotExist -> 500.
    Expected: the upsert retries (the row is gone, so a new contact is created: 201) - the
    service already retries for the IntegrityError case."""
    contact = _make(tenant_a, name="Budi", phone="081234567890")
    manager = ContactIdentity.objects
    real_filter = manager.filter
    fired = []

    def filter_then_erase(*args, **kwargs):  # runs after the phone was matched, before the row lock
        if not fired:
            fired.append(_erase(tenant_a, contact.pk))
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(manager, "filter", filter_then_erase)
    client_a.raise_request_exception = False
    r = client_a.post("/contacts", {"phone": "0812-3456-7890", "external_ids": {"whatsapp": "6281234567890"},
                                    "name": "Budi"}, format="json")
    assert fired
    assert r.status_code in (200, 201), (r.status_code, r.content[:300])


def test_log_record_racing_an_erasure_is_not_a_500(client_a, tenant_a, monkeypatch):
    """POST /contacts/logs loads the contact, which is then erased before the row is inserted: the
    deferred foreign key fails at commit, the service retries 5 times and raises RuntimeError -> 500.
    Expected: 404 contact_not_found."""
    contact = _make(tenant_a, name="Budi", phone="081234567890")
    real = contact_log_record

    def record_after_the_erasure(**kwargs):
        _erase(tenant_a, contact.pk)
        return real(**kwargs)

    monkeypatch.setattr("contacts.api.contact_log_record", record_after_the_erasure)
    client_a.raise_request_exception = False
    r = client_a.post("/contacts/logs", {"contact_id": contact.pk, "role": "user", "content": "Halo",
                                         "channel": "whatsapp", "external_message_id": "wamid.1"}, format="json")
    assert_error(r, 404, "contact_not_found")


def test_second_concurrent_delete_records_a_second_erasure(client_a, tenant_a, monkeypatch):
    """Two DELETEs of one contact overlap: both load it, the first erases it, the second's
    contact.delete() deletes 0 rows yet answers 200 "deleted": true and stores a second
    ContactDeletion. Expected: the second answers 404 contact_not_found; one erasure record."""
    contact = _make(tenant_a, name="Budi", phone="081234567890")
    real = _REAL_DELETE
    fired = []

    def delete_after_the_other(**kwargs):
        if not fired:
            fired.append(_erase(tenant_a, contact.pk))
        return real(**kwargs)

    monkeypatch.setattr("contacts.api.contact_delete", delete_after_the_other)
    r = client_a.delete(f"/contacts/{contact.pk}?reason=again")
    with scopes_disabled():
        records = ContactDeletion.objects.filter(contact_id=contact.pk).count()
    assert (r.status_code, records) == (404, 1), (r.status_code, r.content[:200], records)
