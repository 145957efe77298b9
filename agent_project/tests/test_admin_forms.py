"""Admin forms and the try-it view on odd input: an answer, never a 500."""
from __future__ import annotations

import json

import pytest

from conftest import super_client

from tools.tests.conftest import _tool_settings, order_tool, shop_api  # noqa: F401
from tools.tests.test_admin import form_data

pytestmark = pytest.mark.django_db

CONTACT_FORM = {"name": "B", "phone": "081200000002", "email": "", "tags": "[]", "attributes": "{}",
                "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
                "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"}


@pytest.mark.parametrize("field,value", [
    ("attributes", '{"note": "a\\u0000b"}'),
    ("attributes", '{"note": "a\\ud800b"}'),
    ("tags", '["vip\\u0000"]'),
])
def test_a_contact_json_field_with_unstorable_text_is_a_form_error(tenant_a, field, value):
    from contacts.services import contact_upsert

    contact = contact_upsert(tenant=tenant_a, data={"name": "B", "phone": "081200000002"}).contact
    response = super_client().post(f"/admin/contacts/contact/{contact.pk}/change/", {**CONTACT_FORM, field: value})
    assert response.status_code == 200, response.status_code  # the form shown again with an error


@pytest.mark.parametrize("field,value", [
    ("parameters", '{"type": "object", "properties": {"a\\u0000": {"type": "string"}}}'),
    ("response_mapping", '{"status": "data.\\u0000"}'),
])
def test_a_tool_json_field_with_unstorable_text_is_a_form_error(tenant_a, shop_api, order_tool, field, value):
    tool = order_tool(tenant_a, shop_api)
    response = super_client().post(f"/admin/tools/tenanttool/{tool.pk}/change/", form_data(tool, **{field: value}))
    assert response.status_code == 200, response.status_code


@pytest.mark.parametrize("arguments", ['{"order_id": "a\\u0000b"}', '{"order_id": "\\ud800"}',
                                       '{"order_id": ' + json.dumps("x" * 100000) + "}", '{"order_id": 1e400}',
                                       '{"order_id": [1, {"a": null}]}', "[]", "\u0000"])
def test_try_it_odd_arguments(tenant_a, shop_api, order_tool, arguments):
    tool = order_tool(tenant_a, shop_api)
    response = super_client().post(f"/admin/tools/tenanttool/{tool.pk}/try/", {"arguments": arguments})
    assert response.status_code == 200, response.status_code


def test_try_it_missing_row_is_404(tenant_a):
    assert super_client().get("/admin/tools/tenanttool/999999/try/").status_code == 404
