def test_put_then_get_settings(global_client):
    r = global_client.put("/tenants/acme/settings", {"name": "Acme", "working_hours": {"mon": "09:00-17:00"}}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["api_key"].startswith("sk_live_")
    r2 = global_client.get("/tenants/acme/settings/")
    assert r2.status_code == 200
    assert r2.json()["working_hours"] == {"mon": [["09:00", "17:00"]]}
