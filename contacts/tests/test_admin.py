"""The operator console: search, history inline, merge with confirmation, CSV, recorded erasure."""

from __future__ import annotations

import csv
import io

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django_scopes import scopes_disabled

from contacts.models import Contact, ContactDeletion, ContactLog, ContactMerge
from contacts.services import contact_for_channel, contact_log_record, contact_upsert

CHANGELIST = "/admin/contacts/contact/"


def _with_logs(tenant, external_id, n, **data):
    contact = contact_for_channel(tenant=tenant, channel="whatsapp", external_id=external_id)
    if data:
        contact = contact_upsert(tenant=tenant, data={"external_ids": {"whatsapp": external_id}, **data}).contact
    for i in range(n):
        contact_log_record(tenant=tenant, contact=contact, role="user", content=f"pesan {external_id} {i}",
                           channel="whatsapp")
    return contact


def test_search_by_name_email_and_any_phone_spelling(admin_client, tenant_a, tenant_b):
    contact_upsert(tenant=tenant_a, data={"name": "Budi Santoso", "phone": "081234567890", "email": "budi@x.com"})
    contact_upsert(tenant=tenant_a, data={"name": "Siti", "phone": "081299990000", "email": "siti@x.com"})
    contact_upsert(tenant=tenant_b, data={"name": "Budi di B", "phone": "081234567890"})
    for term, expected in [("santoso", {"Budi Santoso"}), ("siti@x", {"Siti"}),
                           ("0812-3456-7890", {"Budi Santoso", "Budi di B"}), ("+6281299990000", {"Siti"})]:
        r = admin_client.get(CHANGELIST, {"q": term})
        assert r.status_code == 200
        assert {str(c) for c in r.context["cl"].result_list} == expected, term
    # The tenant filter still holds while searching by phone.
    r = admin_client.get(CHANGELIST, {"q": "0812-3456-7890", "tenant__id__exact": "tenant-b"})
    assert {str(c) for c in r.context["cl"].result_list} == {"Budi di B"}


def test_change_page_shows_history_inline(admin_client, tenant_a):
    contact = _with_logs(tenant_a, "628111", 3, name="Budi")
    other = _with_logs(tenant_a, "628222", 1)
    r = admin_client.get(f"{CHANGELIST}{contact.pk}/change/")
    assert r.status_code == 200
    page = r.content.decode()
    for i in range(3):
        assert f"pesan 628111 {i}" in page
    assert "pesan 628222" not in page
    assert f"?contact__id__exact={contact.pk}" in page and other.pk != contact.pk


def test_admin_edit_normalises_and_refuses_duplicates(admin_client, tenant_a):
    contact_upsert(tenant=tenant_a, data={"name": "A", "phone": "081200000001"})
    b = contact_upsert(tenant=tenant_a, data={"name": "B", "phone": "081200000002"}).contact
    form = {"name": "B", "phone": "+62 812 0000 0003", "email": " B@X.COM ", "tags": "[]", "attributes": "{}",
            "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
            "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"}
    r = admin_client.post(f"{CHANGELIST}{b.pk}/change/", form)
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r
    b.refresh_from_db()
    assert (b.phone, b.email) == ("+6281200000003", "b@x.com")
    r = admin_client.post(f"{CHANGELIST}{b.pk}/change/", {**form, "phone": "0812 0000 0001"})
    assert r.status_code == 200 and r.context["adminform"].form.errors
    r = admin_client.post(f"{CHANGELIST}{b.pk}/change/", {**form, "phone": "0812"})
    assert r.status_code == 200 and "phone" in r.context["adminform"].form.errors
    b.refresh_from_db()
    assert b.phone == "+6281200000003"


def test_merge_action_asks_then_merges(admin_client, tenant_a):
    keep = _with_logs(tenant_a, "628111", 2, name="Budi")
    gone = _with_logs(tenant_a, "628222", 3, email="budi@x.com")
    selected = {"action": "merge_contacts", ACTION_CHECKBOX_NAME: [keep.pk, gone.pk]}

    r = admin_client.post(CHANGELIST, selected)
    assert r.status_code == 200
    assert "admin/contacts/contact/merge_confirmation.html" in [t.name for t in r.templates]
    assert r.context["default_target"] == gone.pk  # the one with the longer history is suggested
    with scopes_disabled():
        assert Contact.objects.filter(tenant=tenant_a).count() == 2  # nothing happens before confirming

    r = admin_client.post(CHANGELIST, {**selected, "confirm": "yes", "target": keep.pk})
    assert r.status_code == 302
    with scopes_disabled():
        assert list(Contact.objects.filter(tenant=tenant_a).values_list("pk", flat=True)) == [keep.pk]
        assert ContactLog.objects.filter(contact=keep).count() == 5
        assert ContactMerge.objects.get(source_contact_id=gone.pk).actor == "admin:admin"
    keep.refresh_from_db()
    assert keep.email == "budi@x.com"


def test_merge_action_refuses_mixed_tenants(admin_client, tenant_a, tenant_b):
    a = _with_logs(tenant_a, "628111", 1)
    b = _with_logs(tenant_b, "628111", 1)
    r = admin_client.post(CHANGELIST, {"action": "merge_contacts", ACTION_CHECKBOX_NAME: [a.pk, b.pk],
                                       "confirm": "yes", "target": a.pk}, follow=True)
    assert "different tenants" in r.content.decode()
    with scopes_disabled():
        assert Contact.objects.filter(pk__in=[a.pk, b.pk]).count() == 2


def test_export_action_streams_csv(admin_client, tenant_a):
    a = contact_upsert(tenant=tenant_a, data={"name": "Budi", "phone": "081234567890"}).contact
    contact_upsert(tenant=tenant_a, data={"name": "Not selected", "phone": "081299990000"})
    r = admin_client.post(CHANGELIST, {"action": "export_csv", ACTION_CHECKBOX_NAME: [a.pk]})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert [(row["name"], row["phone"]) for row in rows] == [("Budi", "+6281234567890")]


def test_admin_delete_is_recorded(admin_client, tenant_a):
    contact = _with_logs(tenant_a, "628111", 2, name="Rahasia")
    r = admin_client.post(f"{CHANGELIST}{contact.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    with scopes_disabled():
        assert not Contact.objects.filter(pk=contact.pk).exists()
        assert not ContactLog.objects.filter(contact_id=contact.pk).exists()
        record = ContactDeletion.objects.get(contact_id=contact.pk)
    assert record.actor == "admin:admin" and record.removed["contacts.ContactLog"] == 2


def test_admin_pages_render(admin_client, tenant_a):
    _with_logs(tenant_a, "628111", 1)
    for url in ("/admin/contacts/contactlog/", "/admin/contacts/contactdeletion/", "/admin/contacts/contactmerge/",
                CHANGELIST, f"{CHANGELIST}add/"):
        assert admin_client.get(url).status_code == 200, url


def test_admin_refuses_a_channel_id_another_contact_has(admin_client, tenant_a):
    owner = contact_for_channel(tenant=tenant_a, channel="telegram", external_id="777")
    other = contact_upsert(tenant=tenant_a, data={"name": "Other", "phone": "081200000009"}).contact
    form = {"name": "Other", "phone": "081200000009", "email": "", "tags": "[]", "attributes": "{}",
            "identities-TOTAL_FORMS": "1", "identities-INITIAL_FORMS": "0",
            "identities-0-channel": "Telegram", "identities-0-external_id": " 777 ",
            "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"}
    r = admin_client.post(f"{CHANGELIST}{other.pk}/change/", form)
    assert r.status_code == 200
    assert f"belongs to contact #{owner.pk}" in r.content.decode()
    r = admin_client.post(f"{CHANGELIST}{other.pk}/change/", {**form, "identities-0-external_id": "778"})
    assert r.status_code == 302
    with scopes_disabled():
        assert list(other.identities.values_list("channel", "external_id")) == [("telegram", "778")]


def test_admin_add_contact_with_an_identity(admin_client, tenant_a):
    r = admin_client.post(f"{CHANGELIST}add/", {
        "tenant": "tenant-a", "name": "Baru", "phone": "0812 3456 7890", "email": "", "tags": '["vip"]',
        "attributes": "{}", "identities-TOTAL_FORMS": "1", "identities-INITIAL_FORMS": "0",
        "identities-0-channel": "whatsapp", "identities-0-external_id": "6281234567890",
        "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"})
    assert r.status_code == 302, r.context["adminform"].form.errors if r.context else r
    with scopes_disabled():
        contact = Contact.objects.get(tenant=tenant_a)
        assert (contact.phone, contact.tags) == ("+6281234567890", ["vip"])
        identity = contact.identities.get()
    assert identity.tenant_id == "tenant-a" and identity.external_id == "6281234567890"
