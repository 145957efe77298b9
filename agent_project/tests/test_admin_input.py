"""Odd input to any admin page is an answer, not a server error: a NUL character in a
changelist filter, and an action posted with ids that cannot be the model's keys."""

from __future__ import annotations

import pytest

from conftest import staff_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "/admin/knowledge/document/?status=%00",
    "/admin/knowledge/document/?tenant__id__exact=tenant-a&file_type=%00",
    "/admin/knowledge/chunk/?embedding_model=%00",
    "/admin/followups/followup/?status=%00",
    "/admin/tenants/tenant/?q=ok&locale=%00",
    "/admin/contacts/contact/?q=ok%00",
])
def test_unstorable_text_in_an_admin_query_is_a_bad_request(operator, tenant_a, url):
    response = operator.get(url)
    assert response.status_code == 400 and b"NUL" in response.content


@pytest.mark.parametrize("suffix", ["change/", "delete/", "history/"])
def test_unstorable_text_in_an_admin_object_id_is_a_bad_request(operator, tenant_a, suffix):
    response = operator.get(f"/admin/tenants/tenant/tenant-a%00/{suffix}")  # the tenant's key is text
    assert response.status_code == 400


def test_admin_pages_still_filter(operator, tenant_a):
    assert operator.get("/admin/knowledge/document/?status=ready").status_code == 200


@pytest.mark.parametrize("path,action", [
    ("/admin/followups/followup/", "cancel"),  # a numeric key
    ("/admin/tenants/tenant/", "issue_api_key"),  # a text key
])
@pytest.mark.parametrize("selected", ["abc", "\x00", "1 OR 1=1", ""])
def test_an_action_on_ids_that_cannot_be_keys_selects_nothing(operator, tenant_a, path, action, selected):
    from django_scopes import scopes_disabled

    from tenants.models import ApiKey

    with scopes_disabled():
        keys = ApiKey.objects.count()
    response = operator.post(path, {"action": action, "_selected_action": [selected]})
    assert response.status_code in (200, 302)
    with scopes_disabled():
        assert ApiKey.objects.count() == keys


def test_an_action_keeps_the_usable_ids_of_a_mixed_selection(operator, tenant_a):
    from django_scopes import scopes_disabled

    from tenants.models import ApiKey

    with scopes_disabled():
        before = ApiKey.objects.filter(tenant=tenant_a).count()
    response = operator.post("/admin/tenants/tenant/", {"action": "issue_api_key",
                                                        "_selected_action": [tenant_a.pk, "\x00"]})
    assert response.status_code in (200, 302)
    with scopes_disabled():
        assert ApiKey.objects.filter(tenant=tenant_a).count() == before + 1


def test_a_view_only_user_runs_no_action_that_changes_anything(tenant_a):
    from django_scopes import scopes_disabled

    from tenants.models import ApiKey

    with scopes_disabled():
        keys = list(ApiKey.objects.values_list("pk", "revoked_at"))
    viewer = staff_client("tenants.view_tenant", "tenants.view_apikey")
    assert "issue_api_key" not in viewer.get("/admin/tenants/tenant/").content.decode()
    viewer.post("/admin/tenants/tenant/", {"action": "issue_api_key", "_selected_action": [tenant_a.pk]})
    viewer.post("/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [pk for pk, _ in keys]})
    with scopes_disabled():
        assert list(ApiKey.objects.values_list("pk", "revoked_at")) == keys
    editor = staff_client("tenants.view_tenant", "tenants.change_tenant")
    editor.post("/admin/tenants/tenant/", {"action": "issue_api_key", "_selected_action": [tenant_a.pk]})
    with scopes_disabled():
        assert ApiKey.objects.count() == len(keys) + 1


def test_every_action_names_the_permission_it_needs():
    from django.contrib import admin

    ours = {"agent_project", "tenants", "knowledge", "contacts", "conversations", "followups", "channels", "tools"}
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ours:
            continue
        for action in model_admin.actions or ():
            func = getattr(model_admin, action) if isinstance(action, str) else action
            assert getattr(func, "allowed_permissions", None), f"{model.__name__}: {action}"


def test_contacts_can_be_exported_by_a_user_who_may_view_them(tenant_a):
    from contacts.models import Contact
    from django_scopes import scopes_disabled

    with scopes_disabled():
        contact = Contact.objects.create(tenant=tenant_a, name="Budi")
    viewer = staff_client("contacts.view_contact")
    response = viewer.post("/admin/contacts/contact/", {"action": "export_csv", "_selected_action": [contact.pk]})
    assert response.status_code == 200 and b"Budi" in b"".join(response.streaming_content)


def test_merging_contacts_needs_the_permission_to_delete_them(tenant_a):
    """A merge deletes every selected contact but the one kept."""
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django_scopes import scopes_disabled

    from contacts.models import Contact
    from contacts.services import contact_upsert

    keep = contact_upsert(tenant=tenant_a, data={"name": "Budi", "phone": "081234567890"}).contact
    gone = contact_upsert(tenant=tenant_a, data={"name": "Siti", "phone": "081299990000"}).contact
    form = {"action": "merge_contacts", ACTION_CHECKBOX_NAME: [keep.pk, gone.pk], "confirm": "yes", "target": keep.pk}
    staff_client("contacts.view_contact", "contacts.change_contact").post("/admin/contacts/contact/", form)
    with scopes_disabled():
        assert Contact.objects.filter(pk=gone.pk).exists()
    staff_client("contacts.view_contact", "contacts.change_contact", "contacts.delete_contact").post(
        "/admin/contacts/contact/", form)
    with scopes_disabled():
        assert not Contact.objects.filter(pk=gone.pk).exists()
