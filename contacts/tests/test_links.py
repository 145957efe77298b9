"""A contact log's ``conversation_id`` is checked through the lookup conversations registers
(``contacts.links``): the tenant's own conversation is taken, another tenant's or none answers
404, and without a registered lookup there are no conversations to point at."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from conftest import assert_error
from contacts import links
from contacts.models import ContactLog
from contacts.services import contact_for_channel
from conversations.models import Conversation

pytestmark = pytest.mark.django_db


def _log(client, contact, conversation_id):
    return client.post("/contacts/logs", {"contact_id": contact.pk, "role": "user", "content": "x", "channel": "web",
                                          "conversation_id": conversation_id}, format="json")


def test_a_log_points_at_the_tenants_own_conversation_only(tenant_a, tenant_b, client_a):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u")
    with scopes_disabled():
        own = Conversation.objects.create(tenant=tenant_a, user_id="u")
        foreign = Conversation.objects.create(tenant=tenant_b, user_id="u")
    assert _log(client_a, contact, own.pk).json()["conversation_id"] == own.pk
    assert_error(_log(client_a, contact, foreign.pk), 404, "conversation_not_found")
    with scopes_disabled():
        assert list(ContactLog.objects.values_list("conversation_id", flat=True)) == [own.pk]


def test_without_a_registered_lookup_every_conversation_id_is_unknown(tenant_a, client_a, monkeypatch):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u")
    with scopes_disabled():
        own = Conversation.objects.create(tenant=tenant_a, user_id="u")
    monkeypatch.setattr(links, "_conversation_exists", None)
    assert_error(_log(client_a, contact, own.pk), 404, "conversation_not_found")
