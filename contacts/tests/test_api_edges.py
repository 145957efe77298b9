"""(Found in review, now fixed.) Contacts routes: odd input accepted where the docs promise something else."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from conftest import assert_error
from contacts.models import Contact
from contacts.services import contact_log_record, contact_upsert

pytestmark = pytest.mark.django_db


def test_a_log_dated_in_year_9999_does_not_pin_last_seen_at_forever(client_a, tenant_a):
    """POST /contacts/logs takes any `at` (DRF DateTimeField, no bound): a user line dated
    9999-12-31 (a client clock/typo) moves contact.last_seen_at there through _touch, which only ever
    moves it forward - so no later real message can correct it, the contact heads the newest-seen list
    forever, and last_seen_after/before filters are wrong. The follow-ups app bounds its dates
    (1970-9998, ≤366 days ahead); here: expected 400 for an `at` far in the future, nothing stored."""
    contact = contact_upsert(tenant=tenant_a, data={"phone": "081234567890"}).contact
    r = client_a.post("/contacts/logs", {"contact_id": contact.pk, "role": "user", "content": "Halo",
                                         "channel": "whatsapp", "at": "9999-12-31T00:00:00Z"}, format="json")
    now = timezone.now()
    contact_log_record(tenant=tenant_a, contact=Contact.objects.model._base_manager.get(pk=contact.pk),
                       role="user", content="a real message, now", channel="whatsapp", at=now)
    with scopes_disabled():
        stored = Contact.objects.get(pk=contact.pk).last_seen_at
    assert r.status_code == 400, (r.status_code, r.content[:200], f"last_seen_at now {stored}")
    assert stored == now


def test_search_finds_a_phone_in_the_plus_country_zero_spelling(client_a, make_tenant):
    """docs/contacts.md: GET /contacts `q` finds the "phone in any spelling". "+44 (0)7911 123456"
    (the usual British way to write a number) is accepted by POST /contacts as +447911123456, but as `q`
    it finds nothing: selectors.contact_list compares digit substrings ("4407911123456") instead of
    normalising q with the tenant's region. Expected: the contact is found."""
    from conftest import _client
    uk = make_tenant("tenant-uk", locale="en-GB")
    client = _client(uk.test_key)
    r = client.post("/contacts", {"name": "Oliver", "phone": "+44 (0)7911 123456"}, format="json")
    assert r.status_code == 201 and r.json()["phone"] == "+447911123456", r.content
    body = client.get("/contacts", {"q": "+44 (0)7911 123456"}).json()
    assert [c["name"] for c in body["results"]] == ["Oliver"], body


def test_never_seen_contacts_do_not_come_before_the_newest_seen(client_a, tenant_a):
    """docs/contacts.md: GET /contacts is "newest-seen first". Contacts created through POST /contacts
    have last_seen_at = NULL, and ORDER BY last_seen_at DESC puts NULLs first in PostgreSQL, so every
    imported-but-never-seen contact is listed before the customer who wrote a minute ago.
    Expected: the customer seen a minute ago first (never-seen last: nulls_last)."""
    seen = contact_upsert(tenant=tenant_a, data={"name": "Seen a minute ago", "phone": "081234567890"}).contact
    with scopes_disabled():
        Contact.objects.filter(pk=seen.pk).update(last_seen_at=timezone.now() - timedelta(minutes=1))
    client_a.post("/contacts", {"name": "Imported, never seen", "email": "csv@example.com"}, format="json")
    names = [c["name"] for c in client_a.get("/contacts").json()["results"]]
    assert names[0] == "Seen a minute ago", names


def test_an_external_id_must_be_a_string_not_a_boolean(client_a, tenant_a):
    """ExternalIdsField says "Each external id must be a string." and lets numbers through as text,
    but `true` passes too (bool is an int) and is stored as the id "True". Expected: 400."""
    r = client_a.post("/contacts", {"external_ids": {"whatsapp": True}}, format="json")
    with scopes_disabled():
        stored = Contact.objects.filter(tenant=tenant_a).count()
    assert r.status_code == 400, (r.status_code, r.content[:200])
    assert stored == 0


@pytest.mark.parametrize("path", ["/contacts", "/contacts/logs", "/followup", "/followup/pending"])
def test_a_page_that_is_not_a_number_is_not_an_unknown_route(client_a, path):
    """`?page=abc` (and page=0) answers 404 with code "not_found" - the very answer an unknown route
    gets (JsonErrorMiddleware), so a client cannot tell a bad page number from a wrong URL. page_size has
    its own 422 invalid_page_size. Expected: a 4xx with its own code (e.g. 422 invalid_page)."""
    r = client_a.get(path, {"page": "abc"})
    err = assert_error(r, r.status_code)
    unknown = client_a.get("/no-such-route").json()["error"]["code"]
    assert err["code"] != unknown, (r.status_code, err)
