"""Per-tenant rate limits belong to the installation: a tenant's own key reads them and may
lower them, never raise them (another tenant's throughput fell from 160 to 38.5 req/s when
one raised its own to 1,000,000). The global key and superusers in the admin set them."""

from __future__ import annotations

import pytest

from conftest import assert_error, staff_client, super_client
from tenants.models import Tenant

pytestmark = pytest.mark.django_db
SETTINGS = "/tenants/tenant-a/settings"


@pytest.mark.parametrize("field", ["rate_limit_per_minute", "chat_rate_limit_per_minute",
                                   "upload_rate_limit_per_minute"])
def test_a_tenant_key_cannot_raise_its_own_limit(client_a, tenant_a, settings, field):
    error = assert_error(client_a.put(SETTINGS, {field: 1_000_000}, format="json"), 403,
                         "rate_limit_raise_forbidden")
    assert error["details"]["field"] == field and error["details"]["requested"] == 1_000_000
    tenant_a.refresh_from_db()
    assert getattr(tenant_a, field) is None


def test_a_tenant_key_may_lower_and_read_but_not_raise_back(client_a, tenant_a, settings):
    settings.RATE_LIMIT_DEFAULT_PER_MINUTE = 120
    assert client_a.put(SETTINGS, {"rate_limit_per_minute": 60}, format="json").status_code == 200
    assert client_a.get(SETTINGS).json()["rate_limit_per_minute"] == 60
    assert client_a.put(SETTINGS, {"rate_limit_per_minute": 60}, format="json").status_code == 200  # the same
    assert_error(client_a.put(SETTINGS, {"rate_limit_per_minute": 61}, format="json"), 403,
                 "rate_limit_raise_forbidden")
    # null is the installation default (120): above the 60 in force
    assert_error(client_a.put(SETTINGS, {"rate_limit_per_minute": None}, format="json"), 403,
                 "rate_limit_raise_forbidden")
    # a refused limit leaves the rest of the request unapplied too
    assert_error(client_a.put(SETTINGS, {"name": "Changed", "rate_limit_per_minute": 500}, format="json"), 403)
    tenant_a.refresh_from_db()
    assert (tenant_a.rate_limit_per_minute, tenant_a.name) == (60, "Tenant-A")


def test_the_global_key_sets_any_limit(global_client, tenant_a):
    response = global_client.put(SETTINGS, {"rate_limit_per_minute": 5000, "chat_rate_limit_per_minute": None},
                                 format="json")
    assert response.status_code == 200 and response.json()["rate_limit_per_minute"] == 5000


def test_only_a_superuser_edits_limits_in_the_admin(tenant_a):
    page = f"/admin/tenants/tenant/{tenant_a.pk}/change/"
    staff = staff_client("tenants.view_tenant", "tenants.change_tenant")
    assert 'name="rate_limit_per_minute"' not in staff.get(page).content.decode()
    assert 'name="rate_limit_per_minute"' in super_client().get(page).content.decode()
    Tenant.objects.filter(pk=tenant_a.pk).update(rate_limit_per_minute=7)
    assert staff.get(page).status_code == 200
