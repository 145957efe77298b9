"""(Found in review, now fixed.) WhatsApp ids and contacts found by phone; follow-up conversation checks."""
import pytest

from conftest import assert_error
from contacts.models import Contact, ContactIdentity
from conversations.models import Conversation
from followups.models import FollowUp

pytestmark = pytest.mark.django_db


def test_chat_first_message_from_whatsapp_id_finds_the_imported_contact(client_a, tenant_a, scoped):
    """docs/contacts.md: 'A WhatsApp id made of digits is taken as the phone ... whoever calls (a webhook,
    /chat, a follow-up): the contact imported by that phone is the one found, not a second one.'"""
    r = client_a.post("/contacts", {"name": "Ani", "phone": "0811-1111-1111", "opted_out": True}, format="json")
    assert r.status_code == 201, r.content
    r = client_a.post("/chat", {"user_id": "6281111111111", "channel": "whatsapp",
                                "messages": [{"role": "user", "content": "Halo, ada promo?"}]}, format="json")
    assert r.status_code == 200, r.content
    r2 = client_a.post("/followup/schedule", {"user_id": "6281111111111", "channel": "whatsapp",
                                              "message": "Promo spesial untuk {first_name}!"}, format="json")
    with scoped(tenant_a):
        contacts = list(Contact.objects.order_by("id").values_list("id", "name", "phone", "opted_out"))
        followups = FollowUp.objects.count()
    assert len(contacts) == 1, (contacts, r2.status_code, followups)
    assert r2.status_code == 409 and followups == 0, (r2.status_code, followups)


def test_followup_with_the_contacts_own_conversation_is_not_a_mismatch(client_a, tenant_a, scoped):
    """Ani chats on the web widget and on WhatsApp (one contact, two identities). Scheduling a follow-up
    to contact_id=Ani from her own WhatsApp conversation is refused as 'another customer's'."""
    with scoped(tenant_a):
        ani = Contact.objects.create(tenant=tenant_a, name="Ani", phone="+6281111111111")
        ContactIdentity.objects.create(tenant=tenant_a, contact=ani, channel="web", external_id="web-ani")
        ContactIdentity.objects.create(tenant=tenant_a, contact=ani, channel="whatsapp", external_id="6281111111111")
        wa_chat = Conversation.objects.create(tenant=tenant_a, channel="whatsapp", user_id="6281111111111",
                                              contact=ani)
    r = client_a.post("/followup/schedule", {"contact_id": ani.pk, "conversation_id": wa_chat.pk, "message": ""},
                      format="json")
    assert r.status_code == 201, (r.status_code, r.content)
