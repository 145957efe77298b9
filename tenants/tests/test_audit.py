"""The audit trail's recorders (tenants.audit): entries for tenant and key changes made through
the API and the admin, and for the apps' routes, none for failed requests or reads."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_scopes import scopes_disabled

from agent_project.models import AuditEvent
from tenants.audit import api_action
from tenants.models import ApiKey


@pytest.mark.parametrize("method, status, route, action", [
    ("POST", 201, "contacts", "create"),
    ("PUT", 201, "tenants/{tenant_id}/settings", "create"),
    ("PUT", 200, "tenants/{tenant_id}/settings", "update"),
    ("PATCH", 200, "contacts/{pk}", "update"),
    ("DELETE", 204, "kb/documents/{pk}", "delete"),
    ("POST", 200, "followup/{pk}/cancel", "cancel"),
    ("POST", 200, "contacts/{pk}/merge", "merge"),
    ("POST", 200, "contacts/{pk}", "update"),
    ("POST", 200, "contacts", "update"),          # an upsert that found its contact
    ("POST", 202, "kb/upload", "create"),         # queued for ingestion
    ("POST", 200, "conversations/{pk}/messages/{mid}/feedback", "feedback"),
])
def test_api_action(method, status, route, action):
    assert api_action(method, status, route) == action


def _events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("pk"))


def test_api_tenant_creation_records_the_tenant_and_its_key(global_client):
    r = global_client.put("/tenants/melati/settings", {"name": "Toko Melati", "persona": "Ramah."}, format="json",
                          HTTP_X_REQUEST_ID="req-audit-1")
    assert r.status_code == 201
    tenant_event, key_event = _events(tenant_id="melati")
    assert (tenant_event.actor, tenant_event.source, tenant_event.action) == ("global", "api", "create")
    assert (tenant_event.object_type, tenant_event.object_id) == ("tenants.tenant", "melati")
    assert tenant_event.changes == {"name": "Toko Melati", "persona": "Ramah."}
    assert tenant_event.request_id == "req-audit-1"
    assert (key_event.action, key_event.object_type, key_event.changes["name"]) == ("create", "tenants.apikey",
                                                                                     "primary")
    assert r.json()["api_key"] not in str(key_event.changes)


def test_api_key_replacement_records_create_and_revoke_without_the_key(tenant_a, client_a):
    new_key = "sk_live_" + "N8fQ2kLz7RmW4tXc9VbJ3hYp6GsD1aEu5KoTiZqM"
    r = client_a.put("/tenants/tenant-a/settings", {"name": "Toko A2", "api_key": new_key}, format="json")
    assert r.status_code == 200
    update, *key_events = _events(tenant_id="tenant-a")
    assert (update.action, update.actor) == ("update", f"key:{update.actor.split(':', 1)[1]}")
    assert update.actor.startswith("key:sk_live_")
    assert update.changes == {"name": "Toko A2", "api_key": "[set]"}
    assert sorted(e.action for e in key_events) == ["create", "revoke"]
    assert all(new_key not in str(e.changes) for e in key_events)


def test_failed_and_read_requests_record_nothing(tenant_a, client_a, client_b):
    client_a.get("/tenants/tenant-a/settings")
    client_a.put("/tenants/tenant-a/settings", {"timezone": "Mars/Olympus"}, format="json")  # 422
    client_b.put("/tenants/tenant-a/settings", {"name": "hijack"}, format="json")  # 403
    assert _events() == []


@pytest.fixture
def operator(client, db):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-123")
    client.force_login(user)
    client.user = user
    return client


def _tenant_form(tenant_id="melati", **overrides):
    data = {
        "id": tenant_id, "name": "Toko Melati", "is_active": "on", "locale": "id-ID", "timezone": "Asia/Jakarta",
        "persona": "Kamu Mawar.", "sop": "Sapa dulu.", "hours_mon": "09:00-17:00", "hours_tue": "",
        "hours_wed": "", "hours_thu": "", "hours_fri": "", "hours_sat": "", "hours_sun": "", "holidays_text": "",
        "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
        "api_keys-MIN_NUM_FORMS": "0", "api_keys-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_admin_create_change_and_delete_of_a_tenant(operator):
    assert operator.post("/admin/tenants/tenant/add/", _tenant_form()).status_code == 302
    operator.post("/admin/tenants/tenant/melati/change/", _tenant_form(name="Toko Melati Baru"))
    operator.post("/admin/tenants/tenant/melati/delete/", {"post": "yes"})
    events = _events(tenant_id="melati")
    assert [(e.action, e.object_type) for e in events] == [
        ("create", "tenants.tenant"), ("create", "tenants.apikey"),
        ("update", "tenants.tenant"), ("delete", "tenants.tenant")]
    assert all(e.actor == "admin:op" and e.source == "admin" and e.actor_user_id == operator.user.pk for e in events)
    assert "Name" in events[2].changes["message"] or "name" in events[2].changes["message"].lower()


def test_admin_form_with_errors_records_nothing(operator):
    assert operator.post("/admin/tenants/tenant/add/", _tenant_form(hours_mon="9-5")).status_code == 200
    assert _events() == []


def test_admin_key_actions_are_recorded_per_key(operator, tenant_a):
    with scopes_disabled():
        primary = ApiKey.objects.get(tenant=tenant_a)
    operator.post("/admin/tenants/apikey/", {"action": "rotate_now", "_selected_action": [primary.pk]})
    events = _events(tenant_id="tenant-a")
    assert {(e.action, e.object_type) for e in events} >= {
        ("rotate_now", "tenants.apikey"), ("create", "tenants.apikey"), ("revoke", "tenants.apikey")}
    revoke = next(e for e in events if e.action == "revoke")
    assert revoke.object_id == str(primary.pk) and revoke.actor == "admin:op"


def test_admin_issue_key_action_on_a_tenant(operator, tenant_b):
    operator.post("/admin/tenants/tenant/", {"action": "issue_api_key", "_selected_action": ["tenant-b"]})
    actions = [(e.action, e.object_type, e.object_id) for e in _events(tenant_id="tenant-b")]
    assert actions[0] == ("issue_api_key", "tenants.tenant", "tenant-b")
    assert actions[1][:2] == ("create", "tenants.apikey")


# --- the apps' routes: documents, contacts, follow-ups -----------------------------------

def _one(**filters):
    events = _events(**filters)
    assert len(events) == 1, [(e.action, e.object_type, e.object_id) for e in _events()]
    return events[0]


def test_documents_created_and_deleted_through_the_api(tenant_a, client_a):
    r = client_a.post("/kb/upsert", {"title": "Jam buka", "content": "Buka jam 9."}, format="json")
    assert r.status_code == 201, r.content
    doc_id = str(r.json()["id"])
    created = _one(object_type="knowledge.document", action="create")
    assert (created.object_id, created.tenant_id, created.changes["title"]) == (doc_id, "tenant-a", "Jam buka")
    assert client_a.delete(f"/kb/documents/{doc_id}").status_code == 204
    deleted = _one(object_type="knowledge.document", action="delete")
    assert deleted.object_id == doc_id and deleted.actor == created.actor


def test_contacts_created_changed_merged_and_deleted(tenant_a, client_a):
    first = client_a.post("/contacts", {"name": "Budi", "phone": "+6281234567890",
                                        "email": "budi@example.com"}, format="json").json()["id"]
    second = client_a.post("/contacts", {"name": "Sari", "phone": "+6281311112222"}, format="json").json()["id"]
    created = _events(object_type="contacts.contact", action="create")
    assert [e.object_id for e in created] == [str(first), str(second)]
    assert created[0].changes["phone"] == "+62********890" and created[0].changes["email"] == "b***@e***.com"
    assert client_a.patch(f"/contacts/{first}", {"name": "Budi S."}, format="json").status_code == 200
    assert _one(object_type="contacts.contact", action="update").changes == {"name": "Budi S."}
    assert client_a.post(f"/contacts/{first}/merge", {"source_id": second}, format="json").status_code == 200
    merge = _one(object_type="contacts.contact", action="merge")
    assert (merge.object_id, merge.changes) == (str(first), {"source_id": second})
    assert client_a.delete(f"/contacts/{first}").status_code in (200, 204)
    assert _one(object_type="contacts.contact", action="delete").object_id == str(first)


def test_followups_scheduled_and_cancelled(tenant_a, client_a):
    contact = client_a.post("/contacts", {"name": "Budi", "phone": "+6281234567890"}, format="json").json()["id"]
    r = client_a.post("/followup/schedule", {"contact_id": contact, "message": "Halo lagi", "delay_minutes": 60},
                      format="json")
    assert r.status_code == 201, r.content
    followup = str(r.json()["id"])
    assert _one(object_type="followups.followup", action="create").object_id == followup
    assert client_a.post(f"/followup/{followup}/cancel", {}, format="json").status_code == 200
    cancel = _one(object_type="followups.followup", action="cancel")
    assert cancel.object_id == followup and cancel.actor.startswith("key:")


def test_chat_and_search_are_not_audited(tenant_a, client_a):
    client_a.post("/kb/search", {"query": "jam buka"}, format="json")
    client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "Halo"}]}, format="json")
    assert _events() == []
