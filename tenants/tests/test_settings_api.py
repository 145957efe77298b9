import pytest

from conftest import GLOBAL_KEY, assert_error

SETTINGS = "/tenants/{}/settings"

FULL = {
    "name": "Toko Bunga Melati",
    "persona": "Kamu adalah Mawar, asisten Toko Bunga Melati.\nRamah dan singkat.",
    "sop": "1. Sapa pelanggan.\n2. Tawarkan katalog.",
    "locale": "id-ID",
    "timezone": "Asia/Makassar",
    "working_hours": {"mon": "08:00-12:00, 13:00-16:00", "sat": [["09:00", "13:00"]]},
    "holidays": ["2026-12-25"],
}


def test_global_key_creates_a_tenant_and_gets_a_key_once(global_client, api_client):
    response = global_client.put(SETTINGS.format("melati"), FULL, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["api_key"]
    assert key.startswith("sk_live_")
    assert body["tenant_id"] == "melati"
    assert body["working_hours"] == {"mon": [["08:00", "12:00"], ["13:00", "16:00"]], "sat": [["09:00", "13:00"]]}
    assert body["holidays"] == [{"date": "2026-12-25", "name": ""}]
    assert set(body["opening_status"]) >= {"is_open", "next_open", "closes_at", "local_time"}
    # the new key works, and is never shown again
    again = api_client(key).get(SETTINGS.format("melati"))
    assert again.status_code == 200
    assert key not in again.content.decode()
    assert again.json()["api_keys"][0]["prefix"] == key[:16]
    assert "api_key" not in again.json()


def test_round_trip_put_then_get(global_client, api_client):
    key = global_client.put(SETTINGS.format("melati"), FULL, format="json").json()["api_key"]
    body = api_client(key).get(SETTINGS.format("melati")).json()
    for field in ("name", "persona", "sop", "locale", "timezone"):
        assert body[field] == FULL[field]


def test_a_tenant_key_updates_its_own_settings_partially(tenant_a, client_a):
    response = client_a.put(SETTINGS.format("tenant-a"), {"sop": "Selalu tawarkan bantuan manusia."}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["sop"] == "Selalu tawarkan bantuan manusia."
    assert body["persona"] == "Kamu asisten Toko A."  # untouched
    assert body["api_key"] is None


def test_a_given_api_key_is_used_on_creation(global_client, api_client):
    chosen = "shop-key-Xq3vR9tLm2WzP8sKd4NbY7cJh6"  # a client's own key: long and random
    response = global_client.put(SETTINGS.format("custom"), {"name": "C", "api_key": chosen}, format="json")
    assert response.status_code == 201
    assert response.json()["api_key"] == chosen
    assert api_client(chosen).get(SETTINGS.format("custom")).status_code == 200


def test_a_given_api_key_replaces_the_primary_key_on_update(tenant_a, client_a, api_client):
    chosen = "replacement-key-for-tenant-a-0123456789"
    response = client_a.put(SETTINGS.format("tenant-a"), {"api_key": chosen}, format="json")
    assert response.status_code == 200 and response.json()["api_key"] == chosen
    assert_error(api_client(tenant_a.test_key).get(SETTINGS.format("tenant-a")), 401, "api_key_revoked")
    assert api_client(chosen).get(SETTINGS.format("tenant-a")).status_code == 200
    # sending the same key again changes nothing
    assert api_client(chosen).put(SETTINGS.format("tenant-a"), {"api_key": chosen}, format="json").json()[
        "api_key"] is None


def test_weak_chosen_key_is_refused_and_nothing_is_created(global_client):
    assert_error(global_client.put(SETTINGS.format("weak"), {"api_key": "short"}, format="json"), 422, "weak_api_key")
    assert_error(global_client.get(SETTINGS.format("weak")), 404, "tenant_not_found")


def test_a_tenant_key_cannot_create_tenants(client_a):
    assert_error(client_a.put(SETTINGS.format("other"), FULL, format="json"), 403, "tenant_mismatch")


@pytest.mark.parametrize("method", ["get", "put"])
def test_cross_tenant_settings_are_refused(tenant_a, tenant_b, client_b, method):
    response = getattr(client_b, method)(SETTINGS.format("tenant-a"), {"name": "hijack"}, format="json")
    assert_error(response, 403, "tenant_mismatch")
    assert tenant_a.__class__.objects.get(pk="tenant-a").name == "Tenant-A"


def test_x_tenant_id_naming_another_tenant_is_refused(tenant_a, tenant_b, api_client):
    response = api_client(tenant_b.test_key, "tenant-a").get(SETTINGS.format("tenant-b"))
    assert_error(response, 403, "tenant_mismatch")


def test_body_tenant_id_naming_another_tenant_is_refused(tenant_a, tenant_b, client_b):
    response = client_b.put(SETTINGS.format("tenant-b"), {"tenant_id": "tenant-a", "name": "x"}, format="json")
    assert_error(response, 403, "tenant_mismatch")


def test_global_key_reads_any_tenant(tenant_a, global_client):
    assert global_client.get(SETTINGS.format("tenant-a")).json()["name"] == "Tenant-A"


def test_global_key_with_conflicting_x_tenant_id_is_refused(tenant_a, tenant_b, api_client):
    response = api_client(GLOBAL_KEY, "tenant-b").get(SETTINGS.format("tenant-a"))
    assert_error(response, 400, "tenant_ambiguous")


def test_unknown_tenant_is_404(global_client):
    assert_error(global_client.get(SETTINGS.format("nobody")), 404, "tenant_not_found")


@pytest.mark.parametrize("payload,field", [
    ({"working_hours": {"mon": "9-5"}}, "time of day"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"timezone": "Asia"}, "time zone"),  # a folder of the zone data: an OSError, a 500
    ({"working_hours": {"mon": 5}}, "give ranges"),
    ({"holidays": ["tomorrow"]}, "date"),
    ({"synonyms": ["kulkas"]}, "one word"),
    ({"synonyms": [["kulkas", "fridge"]]}, "list of strings"),
    ({"synonyms": [" ".join(f"w{i}" for i in range(25))]}, "too long"),
])
def test_invalid_settings_are_422_and_change_nothing(tenant_a, client_a, payload, field):
    error = assert_error(client_a.put(SETTINGS.format("tenant-a"), {**payload, "name": "Changed"}, format="json"),
                         422, "invalid_settings")
    assert field in error["message"]
    assert client_a.get(SETTINGS.format("tenant-a")).json()["name"] == "Tenant-A"


def test_invalid_tenant_id_is_422(global_client):
    assert_error(global_client.put(SETTINGS.format("bad%20id"), {"name": "x"}, format="json"), 422,
                 "invalid_tenant_id")


def test_trailing_slash_is_optional(tenant_a, client_a):
    assert client_a.get(SETTINGS.format("tenant-a") + "/").status_code == 200
    assert client_a.get(SETTINGS.format("tenant-a")).status_code == 200


def test_webhook_url_and_secret(tenant_a, client_a):
    body = client_a.put(SETTINGS.format("tenant-a"), {"webhook_url": "https://shop.example/hooks/layan",
                                                      "webhook_secret": "a-receiver-chosen-secret-1234"},
                        format="json").json()
    assert body["webhook_url"] == "https://shop.example/hooks/layan"
    assert "webhook_secret" not in body and body["webhook_secret_hint"].endswith("1234")
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_secret == "a-receiver-chosen-secret-1234"


def test_handoff_policy_defaults_and_round_trip(tenant_a, tenant_b, client_a, client_b):
    body = client_a.get(SETTINGS.format("tenant-a")).json()
    assert (body["handoff_on_unanswered"], body["handoff_resume_minutes"]) == (True, 30)
    body = client_a.put(SETTINGS.format("tenant-a"), {"handoff_on_unanswered": False, "handoff_resume_minutes": 120},
                        format="json").json()
    assert (body["handoff_on_unanswered"], body["handoff_resume_minutes"]) == (False, 120)
    body = client_a.put(SETTINGS.format("tenant-a"), {"handoff_resume_minutes": None}, format="json").json()
    assert (body["handoff_on_unanswered"], body["handoff_resume_minutes"]) == (False, None)
    tenant_a.refresh_from_db()
    assert (tenant_a.handoff_on_unanswered, tenant_a.handoff_resume_minutes) == (False, None)
    other = client_b.get(SETTINGS.format("tenant-b")).json()  # another tenant keeps its own
    assert (other["handoff_on_unanswered"], other["handoff_resume_minutes"]) == (True, 30)


def test_synonyms_round_trip_normalised_and_per_tenant(tenant_a, tenant_b, client_a, client_b):
    assert client_a.get(SETTINGS.format("tenant-a")).json()["synonyms"] == []
    body = client_a.put(SETTINGS.format("tenant-a"),
                        {"synonyms": ["Kulkas, refrigerator,  fridge", "gamis abaya gamis", "  "]}, format="json").json()
    assert body["synonyms"] == ["kulkas refrigerator fridge", "gamis abaya"]
    tenant_a.refresh_from_db()
    assert tenant_a.synonyms == ["kulkas refrigerator fridge", "gamis abaya"]
    assert client_b.get(SETTINGS.format("tenant-b")).json()["synonyms"] == []


@pytest.mark.parametrize("value", [-1, "soon", 10**7])
def test_a_bad_handoff_resume_time_is_refused(tenant_a, client_a, value):
    response = client_a.put(SETTINGS.format("tenant-a"), {"handoff_resume_minutes": value}, format="json")
    assert response.status_code in (400, 422), response.content
    tenant_a.refresh_from_db()
    assert tenant_a.handoff_resume_minutes == 30
