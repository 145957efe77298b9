"""The audit trail's writer (agent_project.audit): entries cleaned of secrets and personal
data, for models, named objects and labels; read-only in the admin. What the API and the
admin record through it: tenants/tests/test_audit.py."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from agent_project.audit import audit_record, clean_changes
from agent_project.models import AuditEvent
from tenants.models import ApiKey


@pytest.mark.parametrize("changes, expected", [
    ({"name": "Toko A"}, {"name": "Toko A"}),
    ({"api_key": "sk_live_supersecretvalue123"}, {"api_key": "[set]"}),
    ({"api_key": ""}, {"api_key": ""}),
    ({"webhook_secret": "whsec_x", "password": "p"}, {"webhook_secret": "[set]", "password": "[set]"}),
    ({"phone": "+6281234567890"}, {"phone": "+62********890"}),
    ({"persona": "x" * 250}, {"persona": "x" * 200 + "… (250 chars)"}),
    ({"nested": {"email": "budi@example.com"}}, {"nested": {"email": "b***@e***.com"}}),
    ({"n": 3, "ok": True, "none": None}, {"n": 3, "ok": True, "none": None}),
])
def test_clean_changes(changes, expected):
    assert clean_changes(changes) == expected


def test_audit_record_accepts_models_tuples_and_labels(tenant_a):
    with scopes_disabled():
        key = ApiKey.objects.get(tenant=tenant_a)
    event = audit_record(actor="system", action="revoke", obj=key, tenant=tenant_a, changes={"why": "leaked"})
    assert (event.actor, event.source, event.object_type, event.object_id, event.tenant_id) == (
        "system", "system", "tenants.apikey", str(key.pk), "tenant-a")
    event = audit_record(actor="system", action="delete", obj=("kb/documents", 7), tenant="tenant-a", changes=None)
    assert (event.object_type, event.object_id, event.changes) == ("kb/documents", "7", {})


def test_audit_log_is_readable_not_editable_in_the_admin(operator, tenant_a):
    event = audit_record(actor="system", action="delete", obj=("kb/documents", 9), tenant=tenant_a, changes={})
    page = operator.get("/admin/agent_project/auditevent/")
    assert page.status_code == 200 and "kb/documents" in page.content.decode()
    assert operator.get(f"/admin/agent_project/auditevent/{event.pk}/change/").status_code == 200
    assert operator.get("/admin/agent_project/auditevent/add/").status_code == 403
    operator.post(f"/admin/agent_project/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(pk=event.pk).exists()
