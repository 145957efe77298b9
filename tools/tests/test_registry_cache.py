"""tools_for is cached per tenant, and every way of changing a tool is seen at once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.models import Tenant
from tools import registry
from tools.models import ShippingConfig, TenantTool

pytestmark = pytest.mark.django_db


def fresh(tenant):
    return Tenant.objects.get(pk=tenant.pk)  # as a request loads it


def names(tenant, scoped):
    with scoped(tenant):
        return [t.name for t in registry.tools_for(tenant=fresh(tenant))]


def add_tool(tenant, scoped, name="order_status"):
    with scoped(tenant):
        return TenantTool.objects.create(tenant=tenant, name=name, description="d",
                                         url_template="https://shop.example.com/o/{id}")


def test_a_second_turn_asks_the_database_nothing(tenant_a, scoped):
    add_tool(tenant_a, scoped)
    tenant = fresh(tenant_a)
    with scoped(tenant_a):
        first = registry.tools_for(tenant=tenant)
        with CaptureQueriesContext(connection) as queries:
            again = registry.tools_for(tenant=tenant)
    assert len(queries.captured_queries) == 0
    assert [t.name for t in again] == [t.name for t in first] == ["order_status"]


@pytest.mark.parametrize("change", ["create", "save", "bulk update", "delete", "queryset delete", "shipping"])
def test_every_change_is_seen_by_the_next_turn(tenant_a, scoped, change):
    tool = add_tool(tenant_a, scoped)
    assert names(tenant_a, scoped) == ["order_status"]
    stale = fresh(tenant_a)  # e.g. another worker's tenant object, loaded before the change
    with scoped(tenant_a):
        if change == "create":
            add_tool(tenant_a, scoped, name="stock_check")
            expected = ["order_status", "stock_check"]
        elif change == "save":
            tool.enabled = False
            tool.save()
            expected = []
        elif change == "bulk update":  # the admin's disable action
            TenantTool.objects.filter(pk=tool.pk).update(enabled=False)
            expected = []
        elif change == "delete":
            tool.delete()
            expected = []
        elif change == "queryset delete":
            TenantTool.objects.filter(tenant=tenant_a).delete()
            expected = []
        else:
            ShippingConfig.objects.create(tenant=tenant_a, provider="mock")
            expected = ["track_shipment", "order_status"]
    assert fresh(tenant_a).updated_at > stale.updated_at  # what other processes key on
    assert names(tenant_a, scoped) == expected


def test_tenants_do_not_share_entries(tenant_a, tenant_b, scoped):
    add_tool(tenant_a, scoped)
    assert names(tenant_a, scoped) == ["order_status"]
    assert names(tenant_b, scoped) == []
