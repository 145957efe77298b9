"""The operator's view of tenants and keys, through the real admin pages."""

import re

import pytest
from django.contrib.auth import get_user_model
from django_scopes import scopes_disabled

from tenants.models import ApiKey, Tenant


@pytest.fixture
def operator(client, db):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-123")
    client.force_login(user)
    return client


def _form(tenant_id="melati", **overrides):
    data = {
        "id": tenant_id, "name": "Toko Melati", "is_active": "on", "locale": "id-ID", "timezone": "Asia/Jakarta",
        "persona": "Kamu Mawar.", "sop": "Sapa dulu.",
        "hours_mon": "09:00-12:00, 13:00-17:00", "hours_tue": "", "hours_wed": "", "hours_thu": "",
        "hours_fri": "20:00-02:00", "hours_sat": "", "hours_sun": "",
        "holidays_text": "2026-12-25 Natal\n2026-08-17",
        "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0",
        "api_keys-MIN_NUM_FORMS": "0", "api_keys-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def _shown_key(response) -> str:
    match = re.search(r"<code>(sk_live_\w+)</code>", response.content.decode())
    assert match, "the new key should be displayed once"
    return match.group(1)


def test_creating_a_tenant_in_the_admin_parses_hours_and_shows_a_key_once(operator):
    response = operator.post("/admin/tenants/tenant/add/", _form(), follow=True)
    assert response.status_code == 200
    tenant = Tenant.objects.get(pk="melati")
    assert tenant.working_hours == {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["20:00", "02:00"]]}
    assert tenant.holidays == [{"date": "2026-08-17", "name": ""}, {"date": "2026-12-25", "name": "Natal"}]
    key = _shown_key(response)
    with scopes_disabled():
        assert ApiKey.objects.get(tenant=tenant).prefix == key[:16]
    # the change page shows the key by prefix only
    page = operator.get("/admin/tenants/tenant/melati/change/").content.decode()
    assert key[:16] in page and key not in page
    assert 'value="09:00-12:00, 13:00-17:00"' in page


def test_bad_hours_are_refused_with_a_message(operator):
    response = operator.post("/admin/tenants/tenant/add/", _form(hours_mon="9-5"))
    assert response.status_code == 200
    assert "not a time of day" in response.content.decode()
    assert not Tenant.objects.filter(pk="melati").exists()


def test_issue_rotate_and_revoke_keys_from_the_admin(operator, tenant_a, api_client):
    response = operator.post("/admin/tenants/tenant/", {"action": "issue_api_key", "_selected_action": ["tenant-a"]},
                             follow=True)
    issued = _shown_key(response)
    assert api_client(issued).get("/tenants/tenant-a/settings").status_code == 200

    with scopes_disabled():
        primary = ApiKey.objects.get(tenant=tenant_a, name="primary")
    response = operator.post("/admin/tenants/apikey/", {"action": "rotate_now", "_selected_action": [primary.pk]},
                             follow=True)
    rotated = _shown_key(response)
    assert api_client(tenant_a.test_key).get("/tenants/tenant-a/settings").status_code == 401
    assert api_client(rotated).get("/tenants/tenant-a/settings").status_code == 200

    with scopes_disabled():
        successor = ApiKey.objects.get(prefix=rotated[:16])
    operator.post("/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [successor.pk]}, follow=True)
    assert api_client(rotated).get("/tenants/tenant-a/settings").status_code == 401


def test_admin_lists_open_state(operator, tenant_a):
    page = operator.get("/admin/tenants/tenant/").content.decode()
    assert "tenant-a" in page and "24/7" in page


def test_synonyms_are_edited_in_the_admin_one_group_a_line(operator, tenant_a):
    response = operator.post("/admin/tenants/tenant/tenant-a/change/",
                             _form("tenant-a", synonyms_text="kulkas, refrigerator\nGamis abaya\n"), follow=True)
    assert response.status_code == 200
    tenant_a.refresh_from_db()
    assert tenant_a.synonyms == ["kulkas refrigerator", "gamis abaya"]
    page = operator.get("/admin/tenants/tenant/tenant-a/change/").content.decode()
    assert "Knowledge search" in page and "kulkas refrigerator\ngamis abaya" in page
    refused = operator.post("/admin/tenants/tenant/tenant-a/change/", _form("tenant-a", synonyms_text="kulkas"))
    assert refused.status_code == 200 and "has one word" in refused.content.decode()
    tenant_a.refresh_from_db()
    assert tenant_a.synonyms == ["kulkas refrigerator", "gamis abaya"]


def test_the_handoff_policy_is_edited_in_the_admin(operator, tenant_a):
    page = operator.get("/admin/tenants/tenant/tenant-a/change/").content.decode()
    assert "Human handoff" in page and 'name="handoff_on_unanswered"' in page
    assert 'name="handoff_resume_minutes" value="30"' in page
    response = operator.post("/admin/tenants/tenant/tenant-a/change/",
                             _form("tenant-a", handoff_resume_minutes=""), follow=True)
    assert response.status_code == 200
    tenant_a.refresh_from_db()
    # an unticked box is off; an empty resume time is "never"
    assert (tenant_a.handoff_on_unanswered, tenant_a.handoff_resume_minutes) == (False, None)
    operator.post("/admin/tenants/tenant/tenant-a/change/",
                  _form("tenant-a", handoff_on_unanswered="on", handoff_resume_minutes="15"), follow=True)
    tenant_a.refresh_from_db()
    assert (tenant_a.handoff_on_unanswered, tenant_a.handoff_resume_minutes) == (True, 15)
