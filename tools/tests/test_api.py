from __future__ import annotations

import pytest

from conftest import assert_error

pytestmark = pytest.mark.django_db


def test_tools_lists_only_the_tenants_enabled_tools(client_a, client_b, tenant_a, tenant_b, shop_api, order_tool,
                                                    mock_shipping_a):
    order_tool(tenant_a, shop_api)
    order_tool(tenant_a, shop_api, name="cek_stok", enabled=False)
    body = client_a.get("/tools").json()
    assert [t["name"] for t in body["tools"]] == ["track_shipment", "cek_pesanan"]
    assert body["tools"][0]["source"] == "builtin" and body["tools"][1]["source"].startswith("tenant:")
    assert "Authorization" not in str(body) and "shop-secret" not in str(body)  # headers never leave the admin
    assert client_b.get("/tools/").json() == {"tools": []}
    assert_error(client_b.get("/tools", HTTP_X_TENANT_ID="tenant-a"), 403, "tenant_mismatch")


def test_global_key_lists_the_named_tenants_tools(global_client, tenant_a, tenant_b, mock_shipping_a):
    assert [t["name"] for t in global_client.get("/tools", HTTP_X_TENANT_ID="tenant-a").json()["tools"]] == [
        "track_shipment"]
    assert global_client.get("/tools", HTTP_X_TENANT_ID="tenant-b").json()["tools"] == []


def test_tools_needs_a_key(anon_client):
    assert anon_client.get("/tools").status_code == 401
