"""Odd input to any admin page is an answer, not a server error: a NUL character in a
changelist filter, and an action posted with ids that cannot be the model's keys."""

from __future__ import annotations

import pytest

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
