"""(Found in review, now fixed.) POST /followup/schedule: the conversation given must be the recipient's."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django_scopes import scopes_disabled

from conftest import assert_error
from contacts import services as contact_services
from contacts.models import Contact, ContactIdentity
from conversations.models import Conversation
from followups.models import FollowUp


def _two_customers(tenant, scoped):
    with scoped(tenant):
        ani = Contact.objects.create(tenant=tenant, name="Ani", phone="+6281111111111")
        ContactIdentity.objects.create(tenant=tenant, contact=ani, channel="whatsapp", external_id="6281111111111")
        budi = Contact.objects.create(tenant=tenant, name="Budi", phone="+6282222222222")
        budis_chat = Conversation.objects.create(tenant=tenant, channel="whatsapp", user_id="6282222222222",
                                                 contact=budi)
    return ani, budi, budis_chat


@pytest.mark.django_db
@pytest.mark.parametrize("recipient", ["contact_id", "user_id"])
def test_a_conversation_of_another_customer_is_refused(client_a, tenant_a, scoped, recipient):
    """Ani is the recipient, the conversation is Budi's. It is accepted (201) and stored:
    the empty message is then written by the AI from *Budi's* conversation (followups/writer.py reads
    Message.objects.filter(conversation_id=followup.conversation_id)) and sent to Ani, and the webhook
    payload carries Budi's conversation_id with Ani's user id. Expected: a 4xx (e.g. 409/422
    conversation_mismatch) and nothing stored."""
    ani, budi, budis_chat = _two_customers(tenant_a, scoped)
    who = ({"contact_id": ani.pk} if recipient == "contact_id"
           else {"user_id": "6281111111111", "channel": "whatsapp"})
    r = client_a.post("/followup/schedule", {**who, "conversation_id": budis_chat.pk, "message": ""},
                      format="json")
    with scoped(tenant_a):
        stored = list(FollowUp.objects.values_list("contact_id", "conversation_id"))
    assert r.status_code in (400, 409, 422), (r.status_code, stored, f"ani={ani.pk} budi's chat={budis_chat.pk}")
    assert stored == []


_REAL_DELETE = contact_services.contact_delete


@pytest.mark.django_db(transaction=True)
def test_schedule_racing_an_erasure_is_not_a_500(client_a, tenant_a, scoped, monkeypatch):
    """The contact named by contact_id is erased (DELETE /contacts/{id}, another worker) after
    followup_schedule read it: the follow-up's deferred foreign key fails at COMMIT, outside any
    handler -> 500 internal_error. Expected: 404 contact_not_found (lock the contact, e.g.
    select_for_update / key share, when reading it)."""
    with scoped(tenant_a):
        ani = Contact.objects.create(tenant=tenant_a, name="Ani", phone="+6281111111111")
    manager = ContactIdentity.objects
    real_filter = manager.filter
    fired = []

    def erase_in_other_worker():
        try:
            with scopes_disabled():
                _REAL_DELETE(contact=Contact.objects.get(pk=ani.pk), reason="PDP")
        finally:
            connection.close()

    def filter_then_erase(*args, **kwargs):  # _recipient: identities of the contact just read
        if not fired:
            fired.append(1)
            t = threading.Thread(target=erase_in_other_worker)
            t.start()
            t.join(30)
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(manager, "filter", filter_then_erase)
    client_a.raise_request_exception = False
    r = client_a.post("/followup/schedule", {"contact_id": ani.pk, "message": "Halo {name}"}, format="json")
    assert fired
    assert_error(r, 404, "contact_not_found")


@pytest.mark.django_db
def test_whatsapp_user_id_of_an_opted_out_contact_is_refused(client_a, tenant_a, scoped):
    """Ani was imported with her phone and has opted out (POST /contacts, no channel identity yet).
    Scheduling to her WhatsApp id (user_id = her number, channel whatsapp) does not find her:
    followups/services.py:_recipient calls contact_for_channel() without the phone that the inbound
    WhatsApp path derives from the user id (channels/inbound.py:108), so a *second* contact is created
    for the same number, not opted out, and the follow-up is scheduled (201) and will be sent.
    Expected: 409 contact_opted_out, no new contact (the docs: "An opted-out contact is refused";
    "Duplicates are impossible by construction")."""
    r = client_a.post("/contacts", {"name": "Ani", "phone": "0811-1111-1111", "opted_out": True}, format="json")
    assert r.status_code == 201, r.content
    r = client_a.post("/followup/schedule", {"user_id": "6281111111111", "channel": "whatsapp",
                                             "message": "Promo spesial untuk {first_name}!"}, format="json")
    with scoped(tenant_a):
        contacts = list(Contact.objects.values_list("id", "phone", "opted_out"))
        followups = FollowUp.objects.count()
    assert_error(r, 409, "contact_opted_out")
    assert len(contacts) == 1 and followups == 0, contacts
