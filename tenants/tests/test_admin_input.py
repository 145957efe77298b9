"""Tenant and API key admin."""
from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from conftest import super_client

pytestmark = pytest.mark.django_db


def test_revoke_counts_only_the_keys_it_revoked(tenant_a):
    from tenants.models import ApiKey
    from tenants.services import api_key_revoke

    with scopes_disabled():
        key = ApiKey.objects.get(tenant=tenant_a)
    api_key_revoke(api_key=key)
    client = super_client()
    response = client.post("/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert not any("Revoked 1 key" in m for m in shown), shown


def test_the_admin_refuses_a_webhook_secret_the_api_refuses(tenant_a):
    """The API requires 16 to 128 characters (tenants/api.py); so does the admin."""
    from tenants.models import Tenant

    client = super_client()
    page = client.get(f"/admin/tenants/tenant/{tenant_a.pk}/change/")
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    data.update({"webhook_secret": "abc", "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"})
    for prefix in {fs.formset.prefix for fs in page.context["inline_admin_formsets"]}:
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(f"/admin/tenants/tenant/{tenant_a.pk}/change/", data)
    assert Tenant.objects.get(pk=tenant_a.pk).webhook_secret != "abc", response.status_code
