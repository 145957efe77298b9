"""The playground shows the tool calls, in headless Chromium against the live server."""

from __future__ import annotations

import pytest

from conversations.tests.test_playground import browser_page  # noqa: F401 (fixture)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_operator_sees_the_tool_calls_in_the_playground(live_server, mock_shipping_a, django_user_model,
                                                        browser_page):  # noqa: F811
    django_user_model.objects.create_superuser("operator", "ops@example.com", "s3cret-pass-word")
    page = browser_page
    page.goto(f"{live_server.url}/admin/conversations/conversation/playground/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass-word")
    page.click("input[type=submit]")
    page.wait_for_selector("#pg-form")
    page.select_option("#pg-tenant", "tenant-a")
    page.fill("#pg-message", "cek resi JNE 1234567890")
    page.click("#pg-send")
    page.wait_for_selector("#pg-tools tr.tool-call")
    row = page.locator("#pg-tools tr.tool-call").inner_text()
    assert "track_shipment" in row and '"waybill":"1234567890"' in row and "info_received" in row
    assert "menunggu dijemput" in " ".join(page.locator(".turn.assistant .bubble").all_inner_texts())
