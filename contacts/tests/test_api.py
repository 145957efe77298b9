"""The contacts routes over HTTP, on the embedded PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from conftest import assert_error
from contacts.models import Contact, ContactDeletion, ContactLog
from conversations.models import Conversation
from followups.models import FollowUp
from contacts.services import contact_for_channel, contact_log_record, contact_upsert


def _contact(tenant, **data):
    return contact_upsert(tenant=tenant, data=data).contact


# --- POST /contacts --------------------------------------------------------------------

def test_post_creates_then_updates(client_a):
    r = client_a.post("/contacts", {"name": "Budi", "phone": "0812-3456-7890", "email": " Budi@Example.com",
                                    "external_ids": {"whatsapp": "6281234567890"}, "tags": ["vip"],
                                    "attributes": {"city": "Bandung"}}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["created"] is True and body["matched_by"] == []
    assert body["phone"] == "+6281234567890" and body["email"] == "budi@example.com"
    assert body["external_ids"] == [{"channel": "whatsapp", "external_id": "6281234567890"}]

    r = client_a.post("/contacts/", {"phone": "+62 812 3456 7890", "tags": ["reseller"], "opted_out": True},
                      format="json")
    assert r.status_code == 200, r.content
    again = r.json()
    assert again["created"] is False and again["matched_by"] == ["phone"] and again["id"] == body["id"]
    assert again["tags"] == ["vip", "reseller"] and again["opted_out"] is True and again["name"] == "Budi"


def test_post_conflict_answers_409_with_both_ids(client_a, tenant_a):
    a = _contact(tenant_a, phone="081234567890")
    b = _contact(tenant_a, email="b@example.com")
    r = client_a.post("/contacts", {"phone": "6281234567890", "email": "B@example.com", "name": "?"}, format="json")
    error = assert_error(r, 409, "contact_conflict")
    assert error["details"]["contact_ids"] == sorted([a.pk, b.pk])
    assert error["details"]["matched_by"] == {"phone": a.pk, "email": b.pk}
    with scopes_disabled():
        assert Contact.objects.filter(tenant=tenant_a).count() == 2
        assert not Contact.objects.filter(name="?").exists()


@pytest.mark.parametrize("payload, code, field", [
    ({"phone": "0812"}, "invalid_phone", "phone"),
    ({"phone": "call me"}, "invalid_phone", "phone"),
    ({"phone": "+999 123"}, "invalid_phone", "phone"),
    ({"email": "budi@"}, "invalid_email", "email"),
])
def test_post_invalid_phone_or_email_is_422(client_a, tenant_a, payload, code, field):
    r = client_a.post("/contacts", {"name": "X", **payload}, format="json")
    error = assert_error(r, 422, code)
    assert error["details"]["field"] == field
    with scopes_disabled():
        assert not Contact.objects.filter(tenant=tenant_a).exists()


@pytest.mark.parametrize("payload, status, code", [
    ({"name": "only a name"}, 422, "contact_key_required"),
    ({"phone": "081234567890", "tags": "vip"}, 400, "validation_error"),
    ({"phone": "081234567890", "external_ids": "whatsapp"}, 400, "validation_error"),
    ({"external_ids": {"": "123"}}, 422, "invalid_external_id"),
])
def test_post_malformed_is_refused(client_a, payload, status, code):
    assert_error(client_a.post("/contacts", payload, format="json"), status, code)


# --- GET /contacts ---------------------------------------------------------------------

def test_list_searches_filters_and_paginates(client_a, tenant_a, tenant_b):
    now = timezone.now()
    for i in range(7):
        c = _contact(tenant_a, name=f"Pelanggan {i}", phone=f"08120000000{i}", email=f"p{i}@example.com",
                     tags=["vip"] if i % 2 else ["umum"])
        with scopes_disabled():
            Contact.objects.filter(pk=c.pk).update(last_seen_at=now - timedelta(days=i))
    _contact(tenant_b, name="Pelanggan B", phone="081200000001")

    r = client_a.get("/contacts", {"page_size": 3})
    body = r.json()
    assert r.status_code == 200 and body["count"] == 7 and len(body["results"]) == 3 and body["next"]
    assert [c["name"] for c in body["results"]] == ["Pelanggan 0", "Pelanggan 1", "Pelanggan 2"]  # newest seen first
    page3 = client_a.get("/contacts", {"page_size": 3, "page": 3}).json()
    assert [c["name"] for c in page3["results"]] == ["Pelanggan 6"] and page3["next"] is None

    def names(**params):
        return sorted(c["name"] for c in client_a.get("/contacts", params).json()["results"])

    assert names(q="pelanggan 3") == ["Pelanggan 3"]
    assert names(q="0812-0000-0004") == ["Pelanggan 4"]  # any spelling of the phone
    assert names(q="P5@EXAMPLE") == ["Pelanggan 5"]
    assert names(tag="vip") == ["Pelanggan 1", "Pelanggan 3", "Pelanggan 5"]
    assert names(last_seen_after=(now - timedelta(days=2, hours=1)).isoformat()) == [
        "Pelanggan 0", "Pelanggan 1", "Pelanggan 2"]
    assert names(last_seen_before=(now - timedelta(days=5, hours=1)).isoformat()) == ["Pelanggan 6"]
    assert_error(client_a.get("/contacts", {"last_seen_after": "yesterday"}), 400, "validation_error")


# --- GET / PATCH /contacts/{id} ------------------------------------------------------------

def test_detail_has_counts(client_a, tenant_a, scoped):
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628", name="Budi")
    for i in range(3):
        contact_log_record(tenant=tenant_a, contact=contact, role="user", content=str(i), channel="whatsapp")
    now = timezone.now()
    with scoped(tenant_a):
        for user_id in ("628", "628-old"):
            conversation = Conversation.objects.create(tenant=tenant_a, channel="whatsapp", user_id=user_id,
                                                       contact=contact)
        FollowUp.objects.create(tenant=tenant_a, contact=contact, conversation=conversation, channel="log",
                                scheduled_at=now, next_attempt_at=now)
    r = client_a.get(f"/contacts/{contact.pk}")
    assert r.status_code == 200
    counts = r.json()["counts"]
    assert counts == {"logs": 3, "identities": 1, "conversations": 2, "follow_ups": 1}
    fresh = contact_for_channel(tenant=tenant_a, channel="web", external_id="new")
    assert client_a.get(f"/contacts/{fresh.pk}").json()["counts"] == {
        "logs": 0, "identities": 1, "conversations": 0, "follow_ups": 0}
    assert_error(client_a.get("/contacts/999999"), 404, "contact_not_found")


def test_patch_updates_and_refuses_a_taken_phone(client_a, tenant_a):
    a = _contact(tenant_a, phone="081200000001")
    b = _contact(tenant_a, phone="081200000002", tags=["x"])
    r = client_a.patch(f"/contacts/{b.pk}/", {"name": "Baru", "tags": ["y"], "opted_out": True,
                                              "external_ids": {"telegram": "55"}}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["name"] == "Baru" and body["tags"] == ["y"] and body["opted_out"] is True
    assert body["external_ids"] == [{"channel": "telegram", "external_id": "55"}]

    error = assert_error(client_a.patch(f"/contacts/{b.pk}", {"phone": "+62 812 0000 0001", "name": "Z"},
                                        format="json"), 409, "contact_duplicate")
    assert error["details"] == {"field": "phone", "contact_id": a.pk}
    assert_error(client_a.patch(f"/contacts/{b.pk}", {"phone": "12"}, format="json"), 422, "invalid_phone")
    b.refresh_from_db()
    assert (b.name, b.phone) == ("Baru", "+6281200000002")
    # Clearing the phone is allowed.
    assert client_a.patch(f"/contacts/{b.pk}", {"phone": None}, format="json").json()["phone"] is None


# --- DELETE /contacts/{id} -----------------------------------------------------------------

def test_delete_erases_and_is_recorded(client_a, tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628", name="Rahasia")
    contact_log_record(tenant=tenant_a, contact=contact, role="user", content="alamat saya ...", channel="whatsapp")
    r = client_a.delete(f"/contacts/{contact.pk}?reason=pdp+request")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["deleted"] is True and body["removed"]["contacts.ContactLog"] == 1
    with scopes_disabled():
        record = ContactDeletion.objects.get(pk=body["deletion_id"])
        assert not ContactLog.objects.filter(contact_id=contact.pk).exists()
    assert record.contact_id == contact.pk and record.reason == "pdp request" and record.actor.startswith("key:")
    assert_error(client_a.get(f"/contacts/{contact.pk}"), 404, "contact_not_found")
    assert_error(client_a.delete(f"/contacts/{contact.pk}"), 404, "contact_not_found")


# --- POST /contacts/{id}/merge ---------------------------------------------------------------

def test_merge_route_keeps_every_log(client_a, tenant_a):
    target = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="1")
    source = contact_for_channel(tenant=tenant_a, channel="telegram", external_id="2")
    for contact, n in ((target, 2), (source, 3)):
        for i in range(n):
            contact_log_record(tenant=tenant_a, contact=contact, role="user", content=f"{contact.pk}-{i}",
                               channel="x")
    r = client_a.post(f"/contacts/{target.pk}/merge", {"source_id": source.pk}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["merged_contact_id"] == source.pk and body["moved"]["contacts.ContactLog.contact"] == 3
    assert body["contact"]["counts"]["logs"] == 5 and body["contact"]["counts"]["identities"] == 2
    logs = client_a.get("/contacts/logs", {"contact_id": target.pk}).json()
    assert logs["count"] == 5
    assert_error(client_a.get(f"/contacts/{source.pk}"), 404, "contact_not_found")


def test_merge_route_refusals(client_a, tenant_a):
    contact = _contact(tenant_a, phone="081234567890")
    assert_error(client_a.post(f"/contacts/{contact.pk}/merge", {}, format="json"), 400, "validation_error")
    assert_error(client_a.post(f"/contacts/{contact.pk}/merge", {"source_id": contact.pk}, format="json"),
                 422, "merge_same_contact")
    assert_error(client_a.post(f"/contacts/{contact.pk}/merge", {"source_id": 999999}, format="json"),
                 404, "contact_not_found")


# --- /contacts/logs ----------------------------------------------------------------------------

def test_post_log_is_idempotent_on_external_message_id(client_a, tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628")
    payload = {"contact_id": contact.pk, "direction": "inbound", "content": "Halo kak", "channel": "whatsapp",
               "at": "2026-11-01T10:00:00+07:00", "external_message_id": "wamid.A"}
    first = client_a.post("/contacts/logs", payload, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["role"] == "user" and first.json()["at"].startswith("2026-11-01T03:00:00")
    again = client_a.post("/contacts/logs/", {**payload, "content": "changed"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["content"] == "Halo kak"
    with scopes_disabled():
        assert ContactLog.objects.filter(tenant=tenant_a).count() == 1


@pytest.mark.parametrize("payload, status, code", [
    ({"role": "bot"}, 400, "validation_error"),
    ({"role": None, "direction": None}, 400, "validation_error"),
    ({"content": None}, 400, "validation_error"),
    ({"contact_id": 999999}, 404, "contact_not_found"),
    ({"at": "kemarin"}, 400, "validation_error"),
])
def test_post_log_refusals(client_a, tenant_a, payload, status, code):
    contact = contact_for_channel(tenant=tenant_a, channel="web", external_id="u")
    body = {"contact_id": contact.pk, "role": "user", "content": "x", "channel": "web", **payload}
    body = {k: v for k, v in body.items() if v is not None}
    assert_error(client_a.post("/contacts/logs", body, format="json"), status, code)
    with scopes_disabled():
        assert not ContactLog.objects.filter(tenant=tenant_a).exists()


def test_get_logs_newest_first_with_filters_and_pages(client_a, tenant_a, tenant_b):
    base = timezone.now().replace(microsecond=0) - timedelta(days=10)
    one = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="1")
    two = contact_for_channel(tenant=tenant_a, channel="telegram", external_id="2")
    for i in range(6):
        contact_log_record(tenant=tenant_a, contact=one, role="user", content=f"one-{i}",
                           channel="whatsapp" if i < 4 else "web", at=base + timedelta(days=i))
    contact_log_record(tenant=tenant_a, contact=two, role="user", content="two-0", channel="telegram",
                       at=base + timedelta(days=3, hours=1))
    other = contact_for_channel(tenant=tenant_b, channel="whatsapp", external_id="1")
    contact_log_record(tenant=tenant_b, contact=other, role="user", content="tenant-b", channel="whatsapp", at=base)

    def contents(**params):
        return [x["content"] for x in client_a.get("/contacts/logs", params).json()["results"]]

    assert contents() == ["one-5", "one-4", "two-0", "one-3", "one-2", "one-1", "one-0"]
    assert contents(contact_id=one.pk, channel="whatsapp") == ["one-3", "one-2", "one-1", "one-0"]
    assert contents(contact_id=one.pk, since=(base + timedelta(days=2)).isoformat(),
                    until=(base + timedelta(days=4)).isoformat()) == ["one-3", "one-2"]
    page = client_a.get("/contacts/logs", {"contact_id": one.pk, "page_size": 4, "page": 2}).json()
    assert page["count"] == 6 and [x["content"] for x in page["results"]] == ["one-1", "one-0"]
    assert_error(client_a.get("/contacts/logs", {"contact_id": "abc"}), 400, "validation_error")
    assert_error(client_a.get("/contacts/logs", {"page": 99}), 404)


# --- GET /contacts/export ------------------------------------------------------------------------

def test_export_csv(client_a, tenant_a, tenant_b):
    _contact(tenant_a, name="Budi, Jr.", phone="081234567890", email="budi@example.com", tags=["vip", "x"],
             external_ids={"whatsapp": "6281234567890"}, attributes={"kota": "Bandung"})
    _contact(tenant_a, name="=HYPERLINK(\"http://evil\")", email="evil@example.com")
    _contact(tenant_b, name="Tenant B", phone="081299999999")
    r = client_a.get("/contacts/export", HTTP_ACCEPT="text/csv")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/csv")
    assert "attachment" in r["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    by_email = {row["email"]: row for row in rows}
    assert set(by_email) == {"budi@example.com", "evil@example.com"}
    budi = by_email["budi@example.com"]
    assert budi["name"] == "Budi, Jr." and budi["phone"] == "+6281234567890" and budi["tags"] == "vip;x"
    assert budi["external_ids"] == "whatsapp:6281234567890" and budi["attributes"] == '{"kota": "Bandung"}'
    assert by_email["evil@example.com"]["name"].startswith("'=")  # not a formula in a spreadsheet
    filtered = client_a.get("/contacts/export", {"q": "budi"})
    assert b"".join(filtered.streaming_content).decode().count("\n") == 2  # header + Budi


# --- tenancy: every route, both ways ---------------------------------------------------------------

ROUTES = [
    ("get", "/contacts", None),
    ("post", "/contacts", {"phone": "081234567890"}),
    ("get", "/contacts/{id}", None),
    ("patch", "/contacts/{id}", {"name": "hijacked"}),
    ("delete", "/contacts/{id}", None),
    ("post", "/contacts/{id}/merge", {"source_id": "{other}"}),
    ("get", "/contacts/logs?contact_id={id}", None),
    ("post", "/contacts/logs", {"contact_id": "{id}", "role": "user", "content": "x", "channel": "web"}),
    ("get", "/contacts/export", None),
]


def _fill(value, ids):
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value in ("{id}", "{other}"):
        return ids[value.strip("{}")]
    return value.format(**ids) if isinstance(value, str) else value


@pytest.fixture
def a_contacts(tenant_a):
    contact = contact_for_channel(tenant=tenant_a, channel="whatsapp", external_id="628", name="Milik A")
    contact_log_record(tenant=tenant_a, contact=contact, role="user", content="rahasia A", channel="whatsapp")
    other = contact_for_channel(tenant=tenant_a, channel="telegram", external_id="9", name="Juga A")
    return {"id": contact.pk, "other": other.pk}


@pytest.mark.parametrize("method, path, payload", ROUTES)
def test_tenant_b_cannot_reach_tenant_a(client_b, tenant_a, a_contacts, method, path, payload):
    r = getattr(client_b, method)(_fill(path, a_contacts), _fill(payload, a_contacts), format="json")
    if "{id}" in path or (payload and "{id}" in str(payload.values())):
        assert_error(r, 404, "contact_not_found")
    else:
        assert r.status_code in (200, 201)
        text = b"".join(r.streaming_content) if r.streaming else r.content
        assert b"Milik A" not in text and b"rahasia A" not in text
    with scopes_disabled():
        contact = Contact.objects.get(pk=a_contacts["id"])
        assert contact.name == "Milik A" and ContactLog.objects.filter(contact=contact).count() == 1
        assert Contact.objects.filter(tenant=tenant_a).count() == 2


def test_tenant_b_cannot_use_a_as_merge_source(client_b, tenant_b, a_contacts):
    mine = contact_for_channel(tenant=tenant_b, channel="web", external_id="b")
    assert_error(client_b.post(f"/contacts/{mine.pk}/merge", {"source_id": a_contacts["id"]}, format="json"),
                 404, "contact_not_found")
    with scopes_disabled():
        assert Contact.objects.filter(pk=a_contacts["id"]).exists()


@pytest.mark.parametrize("method, path, payload", ROUTES)
def test_naming_another_tenant_is_403(api_client, tenant_a, tenant_b, a_contacts, method, path, payload):
    client = api_client(tenant_b.test_key, "tenant-a")
    r = getattr(client, method)(_fill(path, a_contacts), _fill(payload, a_contacts), format="json")
    assert_error(r, 403, "tenant_mismatch")


@pytest.mark.parametrize("method, path, payload", ROUTES)
def test_no_key_is_refused(anon_client, a_contacts, method, path, payload):
    r = getattr(anon_client, method)(_fill(path, a_contacts), _fill(payload, a_contacts), format="json")
    assert r.status_code in (401, 403)
    assert r.json()["error"]["code"] in ("not_authenticated", "permission_denied")


def test_global_key_names_its_tenant(global_client, tenant_a, a_contacts):
    r = global_client.get(f"/contacts/{a_contacts['id']}", HTTP_X_TENANT_ID="tenant-a")
    assert r.status_code == 200 and r.json()["name"] == "Milik A"
    assert_error(global_client.get(f"/contacts/{a_contacts['id']}"), 400, "tenant_required")


def test_schema_lists_the_routes(client_a):
    r = client_a.get("/api/schema?format=json")
    assert r.status_code == 200, r.content[:300]
    paths = r.json()["paths"]
    for path in ("/contacts", "/contacts/logs", "/contacts/export", "/contacts/{id}", "/contacts/{id}/merge"):
        assert any(p.rstrip("/") == path for p in paths), (path, sorted(paths))
