"""Chat traffic shows up in the contact's history without a second call (issue item 3).
/chat runs for real with the offline model (no account, no network)."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from contacts.models import Contact, ContactIdentity


@pytest.fixture(autouse=True)
def _offline_chat(settings):
    settings.LLM_PROVIDER = "offline"
    settings.EMBEDDING_PROVIDER = "fake"


def test_chat_finds_the_contact_and_records_both_turns(client_a, tenant_a):
    known = client_a.post("/contacts", {"name": "Budi", "external_ids": {"whatsapp": "6281234567890"}},
                          format="json").json()
    # Knowledge that answers the first question: without it the assistant says it does not
    # know, the conversation is handed to a person (channels/handoff/) and the bot goes quiet.
    assert client_a.post("/kb/upsert", {"title": "Jam buka", "content": "Toko buka jam 09.00 sampai 17.00 setiap hari."},
                         format="json").status_code in (200, 201)
    for text in ("Halo, toko buka jam berapa?", "Terima kasih"):
        r = client_a.post("/chat", {"user_id": "6281234567890", "channel": "whatsapp",
                                    "messages": [{"role": "user", "content": text}]}, format="json")
        assert r.status_code == 200, r.content[:300]

    with scopes_disabled():
        assert Contact.objects.filter(tenant=tenant_a).count() == 1  # the existing contact, not a new one
        assert ContactIdentity.objects.get(tenant=tenant_a, external_id="6281234567890").contact_id == known["id"]
    logs = client_a.get("/contacts/logs", {"contact_id": known["id"]}).json()
    assert logs["count"] == 4
    assert [x["role"] for x in logs["results"]] == ["assistant", "user", "assistant", "user"]
    assert logs["results"][3]["content"] == "Halo, toko buka jam berapa?"
    assert {x["channel"] for x in logs["results"]} == {"whatsapp"}
    assert len({x["conversation_id"] for x in logs["results"]}) == 1 and logs["results"][0]["conversation_id"]
    detail = client_a.get(f"/contacts/{known['id']}").json()
    assert detail["counts"]["conversations"] == 1 and detail["last_seen_at"]


def test_a_new_chat_user_becomes_a_contact(client_b, tenant_b):
    r = client_b.post("/chat", {"user_id": "tg-777", "channel": "telegram",
                                "messages": [{"role": "user", "content": "Ada stok?"}]}, format="json")
    assert r.status_code == 200, r.content[:300]
    contacts = client_b.get("/contacts").json()
    assert contacts["count"] == 1
    contact = contacts["results"][0]
    assert contact["external_ids"] == [{"channel": "telegram", "external_id": "tg-777"}]
    assert client_b.get("/contacts/logs", {"contact_id": contact["id"]}).json()["count"] == 2
