"""Tools in the operator console: per-tenant lists, enable/disable, masked secrets that
stay encrypted at rest, the "try it" page, and the calls in the conversation views."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from tools.models import ShippingConfig, TenantTool
from tools.tests.fakes import Answer, biteship_tracking, shop_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_headers_and_keys_are_encrypted_at_rest_and_masked(operator, tenant_a, shop_api, order_tool, biteship_a):
    tool = order_tool(tenant_a, shop_api)
    assert "shop-secret-token" not in raw_column("tools_tenanttool", "headers", tool.pk)
    assert raw_column("tools_tenanttool", "headers", tool.pk).startswith("fernet:")
    assert "biteship_test_key" not in raw_column("tools_shippingconfig", "api_key", biteship_a.pk)
    page = operator.get(f"/admin/tools/tenanttool/{tool.pk}/change/").content.decode()
    assert "shop-secret-token-123456" not in page and "••••3456" in page
    listing = operator.get("/admin/tools/shippingconfig/").content.decode()
    assert "biteship_test_key_A1b2C3d4" not in listing and "••••C3d4" in listing


def form_data(tool: TenantTool, **overrides) -> dict:
    data = {"tenant": tool.tenant_id, "name": tool.name, "description": tool.description, "enabled": "on",
            "intent": tool.intent, "method": tool.method, "url_template": tool.url_template,
            "parameters": json.dumps(tool.parameters), "response_mapping": json.dumps(tool.response_mapping),
            "timeout_seconds": "5", "allow_private_network": "on", "new_headers": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_saving_without_new_headers_keeps_them_and_json_replaces_them(operator, tenant_a, shop_api, order_tool,
                                                                      scoped):
    tool = order_tool(tenant_a, shop_api)
    response = operator.post(f"/admin/tools/tenanttool/{tool.pk}/change/", form_data(tool))
    assert response.status_code == 302, response.content.decode()[:2000]
    with scoped(tenant_a):
        assert TenantTool.objects.get(pk=tool.pk).header_dict() == {
            "Authorization": "Bearer shop-secret-token-123456"}
    operator.post(f"/admin/tools/tenanttool/{tool.pk}/change/",
                  form_data(tool, new_headers='{"X-Api-Key": "new-key-0000000000"}'))
    with scoped(tenant_a):
        assert TenantTool.objects.get(pk=tool.pk).header_dict() == {"X-Api-Key": "new-key-0000000000"}


@pytest.mark.parametrize("overrides, message", [
    ({"url_template": "https://{host}/orders"}, "never in the host"),
    ({"url_template": "gopher://shop.example.com/"}, "http:// or https://"),
    ({"name": "track_shipment"}, "built-in"),
    ({"name": "cek pesanan!"}, "Letters, digits and underscores"),
    ({"parameters": '{"type": "array"}'}, "type"),
    ({"parameters": '{"type": "object", "properties": {}, "required": ["x"]}'}, "unknown properties"),
    ({"response_mapping": '{"status": 3}'}, "dotted path"),
    ({"new_headers": "Authorization: x"}, "JSON object"),
    ({"timeout_seconds": "120"}, "Between"),
])
def test_bad_tool_definitions_are_refused_and_nothing_changes(operator, tenant_a, shop_api, order_tool, scoped,
                                                              overrides, message):
    tool = order_tool(tenant_a, shop_api)
    response = operator.post(f"/admin/tools/tenanttool/{tool.pk}/change/", form_data(tool, **overrides))
    assert response.status_code == 200 and message in response.content.decode()
    with scoped(tenant_a):
        unchanged = TenantTool.objects.get(pk=tool.pk)
    assert (unchanged.name, unchanged.url_template, unchanged.parameters) == (tool.name, tool.url_template,
                                                                              tool.parameters)


def test_enable_and_disable_actions(operator, tenant_a, tenant_b, shop_api, order_tool, scoped):
    a = order_tool(tenant_a, shop_api)
    b = order_tool(tenant_b, shop_api)
    operator.post("/admin/tools/tenanttool/", {"action": "disable", "_selected_action": [a.pk]})
    with scoped(tenant_a):
        assert TenantTool.objects.get(pk=a.pk).enabled is False
    with scoped(tenant_b):
        assert TenantTool.objects.get(pk=b.pk).enabled is True
    listing = operator.get(f"/admin/tools/tenanttool/?tenant__id__exact={tenant_b.pk}").content.decode()
    assert f"/admin/tools/tenanttool/{b.pk}/try/" in listing and f"/admin/tools/tenanttool/{a.pk}/try/" not in listing
    operator.post("/admin/tools/tenanttool/", {"action": "enable", "_selected_action": [a.pk]})
    with scoped(tenant_a):
        assert TenantTool.objects.get(pk=a.pk).enabled is True


def test_try_it_runs_the_tool_with_sample_arguments(operator, tenant_a, shop_api, order_tool):
    tool = order_tool(tenant_a, shop_api)
    page = operator.get(f"/admin/tools/tenanttool/{tool.pk}/try/").content.decode()
    assert "INV-1001" in page and "order_id" in page  # arguments pre-filled from the schema
    shop_api.play(Answer(body=shop_order("INV-42", "DIKEMAS")))
    response = operator.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": '{"order_id": "INV-42"}'})
    body = response.content.decode()
    assert response.status_code == 200 and 'id="try-ok"' in body and "DIKEMAS" in body
    assert shop_api.requests[0].path == "/api/orders/INV-42"
    shop_api.play(Answer(500, {"error": "down"}))
    failed = operator.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": '{"order_id": "X"}'}).content
    assert b"tool_http_error" in failed
    bad = operator.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": "[1]"}).content
    assert b"must be a JSON object" in bad and len(shop_api.requests) == 2


def test_try_it_respects_the_address_check(operator, tenant_a, shop_api, order_tool):
    tool = order_tool(tenant_a, shop_api, allow_private=False)
    body = operator.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": '{"order_id": "1"}'}).content
    assert b"tool_address_refused" in body and shop_api.requests == []


def test_try_it_on_the_tracking_provider(operator, biteship_a, courier_api):
    courier_api.play(Answer(body=biteship_tracking("1234567890", "jne", "delivered")))
    response = operator.post(f"/admin/tools/shippingconfig/{biteship_a.pk}/try/",
                             {"arguments": '{"waybill": "1234567890", "courier": "jne"}'})
    assert "sudah diterima oleh Siti Rahma" in response.content.decode()


def test_shipping_form_keeps_the_key_and_requires_one_for_biteship(operator, tenant_a, tenant_b, biteship_a, scoped):
    data = {"tenant": tenant_a.pk, "provider": "biteship", "api_key": "", "default_courier": "jne", "enabled": "on"}
    assert operator.post(f"/admin/tools/shippingconfig/{biteship_a.pk}/change/", data).status_code == 302
    with scoped(tenant_a):
        assert ShippingConfig.objects.get(pk=biteship_a.pk).api_key == "biteship_test_key_A1b2C3d4"
    refused = operator.post("/admin/tools/shippingconfig/add/", {**data, "tenant": tenant_b.pk})
    assert refused.status_code == 200 and b"needs the shop" in refused.content


def test_staff_without_permission_cannot_try_tools(django_user_model, tenant_a, shop_api, order_tool):
    tool = order_tool(tenant_a, shop_api)
    user = django_user_model.objects.create_user("staff", "s@example.com", "pw-123456789", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": '{"order_id": "1"}'}).status_code == 403
    assert Client().get(f"/admin/tools/tenanttool/{tool.pk}/try/").status_code == 302
    assert shop_api.requests == []


def test_conversation_views_and_playground_show_tool_calls(operator, client_a, mock_shipping_a):
    body = client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "cek resi JNE 1234567890"}]},
                         format="json").json()
    change = operator.get(f"/admin/conversations/conversation/{body['conversation_id']}/change/").content.decode()
    assert "track_shipment" in change and "menunggu dijemput" in change
    messages = operator.get("/admin/conversations/message/").content.decode()
    assert "track_shipment" in messages
    played = operator.post("/admin/conversations/conversation/playground/send/",
                           json.dumps({"tenant_id": "tenant-a", "channel": "web", "message": "cek resi jne 1234567891"}),
                           content_type="application/json").json()
    assert played["tool_calls"][0]["name"] == "track_shipment" and "dijemput kurir" in played["reply"]
    assert 'id="pg-tools"' in operator.get("/admin/conversations/conversation/playground/").content.decode()
