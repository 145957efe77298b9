"""The try-it page never shows a tool's stored headers."""
from __future__ import annotations

import pytest

from conftest import super_client

from tools.tests.conftest import _tool_settings, order_tool, shop_api  # noqa: F401
from tools.tests.fakes import Answer, shop_order

pytestmark = pytest.mark.django_db


def test_try_it_page_does_not_echo_headers(tenant_a, shop_api, order_tool):
    tool = order_tool(tenant_a, shop_api)
    shop_api.play(Answer(body=shop_order("INV-42", "DIKEMAS")))
    client = super_client()
    page = client.post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": '{"order_id": "INV-42"}'})
    assert page.status_code == 200 and b"shop-secret-token" not in page.content
    for url in ("/admin/tools/tenanttool/", f"/admin/tools/tenanttool/{tool.pk}/change/",
                f"/admin/tools/tenanttool/{tool.pk}/history/"):
        r = client.get(url)
        assert r.status_code == 200 and b"shop-secret-token" not in r.content, url
