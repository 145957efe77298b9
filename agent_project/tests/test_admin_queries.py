"""Changelist queries: 30 rows must cost the same number of queries as 3."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import super_client

pytestmark = pytest.mark.django_db


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(ctx.captured_queries)


def _contacts(tenant, n, start=0):
    from contacts.services import contact_for_channel

    return [contact_for_channel(tenant=tenant, channel="whatsapp", external_id=f"62811{start + i:05d}", name=f"C{i}")
            for i in range(n)]


def _conversations(tenant, n, start=0):
    from conversations.models import Conversation
    from tenants.scoping import tenant_scope

    contacts = _contacts(tenant, n, start)
    with tenant_scope(tenant):
        for i, contact in enumerate(contacts):
            Conversation.objects.create(tenant=tenant, channel="whatsapp", user_id=f"62811{start + i:05d}",
                                        contact=contact)


def _logs(tenant, n, start=0):
    from contacts.services import contact_log_record

    for i, contact in enumerate(_contacts(tenant, n, start)):
        contact_log_record(tenant=tenant, contact=contact, role="user", content=f"pesan {i}", channel="whatsapp")


def _compare(tenant, make, url):
    client = super_client()
    make(tenant, 3)
    few = _queries(client, url)
    make(tenant, 27, start=100)
    many = _queries(client, url)
    return few, many


@pytest.mark.parametrize("make,url", [
    (_logs, "/admin/contacts/contactlog/"),
    (_conversations, "/admin/conversations/conversation/"),
    (_conversations, "/admin/channels/operatorconversation/"),  # the operator inbox
    (_contacts, "/admin/contacts/contact/"),
])
def test_a_changelist_costs_the_same_queries_for_30_rows_as_for_3(tenant_a, make, url):
    few, many = _compare(tenant_a, make, url)
    assert many == few, (few, many)
