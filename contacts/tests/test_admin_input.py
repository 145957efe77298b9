"""The contact admin: identity inline and JSON fields on odd input."""
from __future__ import annotations

import json

import pytest
from django_scopes import scopes_disabled

from conftest import super_client

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/contacts/contact/"


def _form(**extra):
    data = {"name": "B", "phone": "081200000002", "email": "", "tags": "[]", "attributes": "{}",
            "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
            "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"}
    data.update(extra)
    return data


def _contact(tenant):
    from contacts.services import contact_upsert

    return contact_upsert(tenant=tenant, data={"name": "B", "phone": "081200000002"}).contact


def test_two_new_identical_identity_rows_are_a_form_error(tenant_a):
    contact = _contact(tenant_a)
    response = super_client().post(f"{CHANGELIST}{contact.pk}/change/", _form(**{
        "identities-TOTAL_FORMS": "2",
        "identities-0-channel": "whatsapp", "identities-0-external_id": "628777",
        "identities-1-channel": "WhatsApp", "identities-1-external_id": " 628777 ",
    }))
    assert response.status_code == 200, response.status_code  # the form again, with an error


@pytest.mark.parametrize("field,value", [("tags", "5"), ("tags", '{"a": 1}'), ("attributes", "[1, 2]"),
                                         ("attributes", '"text"')])
def test_contact_json_fields_of_the_wrong_shape_are_refused(tenant_a, field, value):
    """tags must be a list of strings and attributes an object, as through the API (the changelist
    and a merge rely on it)."""
    contact = _contact(tenant_a)
    client = super_client()
    response = client.post(f"{CHANGELIST}{contact.pk}/change/", _form(**{field: value}))
    with scopes_disabled():
        contact.refresh_from_db()
    assert isinstance(contact.tags, list) and isinstance(contact.attributes, dict), (response.status_code,
                                                                                    contact.tags, contact.attributes)


def test_the_changelist_works_after_an_attempt_to_store_integer_tags(tenant_a):
    contact = _contact(tenant_a)
    client = super_client()
    client.post(f"{CHANGELIST}{contact.pk}/change/", _form(tags="5"))
    assert client.get(CHANGELIST).status_code == 200


def _stored_form(contact, **extra):
    data = {"name": contact.name, "phone": contact.phone or "", "email": contact.email or "",
            "tags": json.dumps(contact.tags), "attributes": json.dumps(contact.attributes),
            "identities-TOTAL_FORMS": "0", "identities-INITIAL_FORMS": "0",
            "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"}
    data.update(extra)
    return data


def test_a_contact_whose_tags_grew_past_100_through_the_api_can_still_be_edited(tenant_a):
    """The API adds each request's tags (up to 100) to the stored ones, and a merge unites two contacts'
    tags: an admin edit of another field keeps more than 100."""
    from contacts.services import contact_upsert

    contact_upsert(tenant=tenant_a, data={"name": "Budi", "phone": "081200000002",
                                          "tags": [f"promo-{i}" for i in range(100)]})
    contact = contact_upsert(tenant=tenant_a, data={"phone": "081200000002", "tags": ["vip"]}).contact
    assert len(contact.tags) == 101
    response = super_client().post(f"/admin/contacts/contact/{contact.pk}/change/",
                                   _stored_form(contact, name="Budi Santoso"))
    with scopes_disabled():
        contact.refresh_from_db()
    assert contact.name == "Budi Santoso", (response.status_code,
                                            response.context and response.context["adminform"].form.errors)
