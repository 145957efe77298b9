"""(Found in review, now fixed.) A follow-up to a contact whose chat id moved to another contact."""
import pytest

from contacts.models import Contact, ContactIdentity
from conversations.models import Conversation
from followups.models import FollowUp

pytestmark = pytest.mark.django_db


def test_followup_to_contact_goes_to_the_user_now_identified_as_another_contact(client_a, tenant_a, scoped):
    """Ani's Telegram chat 5551 turned out to be Budi's (the operator moved the identity in the admin:
    deleted on Ani, added on Budi; the conversation stays bound to Ani until Budi writes again).
    A follow-up to contact_id=Ani from that conversation now takes the conversation's user as the delivery
    address without asking who that user is: it is sent to Budi's chat, with Ani's name and history."""
    with scoped(tenant_a):
        ani = Contact.objects.create(tenant=tenant_a, name="Ani Lestari")
        budi = Contact.objects.create(tenant=tenant_a, name="Budi")
        conv = Conversation.objects.create(tenant=tenant_a, channel="telegram", user_id="5551", contact=ani)
        ContactIdentity.objects.create(tenant=tenant_a, contact=budi, channel="telegram", external_id="5551")
    r = client_a.post("/followup/schedule", {"contact_id": ani.pk, "conversation_id": conv.pk,
                                             "message": "Halo {first_name}, pesanan Anda siap."}, format="json")
    with scoped(tenant_a):
        rows = list(FollowUp.objects.values_list("contact_id", "channel", "user_id"))
    # expected: refused (409 conversation_mismatch: the conversation's user is another contact) or at least
    # not addressed to Budi's chat id
    assert not (r.status_code == 201 and rows == [(ani.pk, "telegram", "5551")]), (r.status_code, rows)
