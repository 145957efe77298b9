"""The channels' section of ``/tenants/{id}/settings`` (registered by ``channels.apps`` with
``tenants.sections``): configured through the tenant route, secrets never read back, a refused
section changes none of the tenant's other settings, another tenant's account answers like a
failed verification."""

from __future__ import annotations

from conftest import assert_error

SETTINGS = "/tenants/{}/settings"

WHATSAPP = {"whatsapp": {"enabled": True, "phone_number_id": "1065550001", "access_token": "EAAG-secret-token-123456",
                         "app_secret": "app-secret-abcdef-123456", "verify_token": "verify-me-please-123"}}


def test_channels_are_configured_through_settings_and_secrets_never_come_back(tenant_a, client_a, fake_wa):
    fake_wa.add_number("1065550001", "EAAG-secret-token-123456")
    response = client_a.put(SETTINGS.format("tenant-a"), {"channels": WHATSAPP}, format="json")
    assert response.status_code == 200, response.content
    text = response.content.decode() + client_a.get(SETTINGS.format("tenant-a")).content.decode()
    for secret in ("EAAG-secret-token-123456", "app-secret-abcdef-123456", "verify-me-please-123"):
        assert secret not in text
    whatsapp = client_a.get(SETTINGS.format("tenant-a")).json()["channels"]["whatsapp"]
    assert whatsapp["enabled"] is True and whatsapp["phone_number_id"] == "1065550001"


def test_a_refused_channel_setting_changes_nothing_else(tenant_a, client_a):
    bad = {"whatsapp": {"enabled": True}}  # enabling without credentials
    response = client_a.put(SETTINGS.format("tenant-a"), {"name": "Renamed", "channels": bad}, format="json")
    assert response.status_code in (400, 422), response.content
    assert client_a.get(SETTINGS.format("tenant-a")).json()["name"] == "Tenant-A"


def test_channel_account_of_another_tenant_answers_like_a_failed_verification(tenant_a, tenant_b, client_a, client_b,
                                                                             fake_wa):
    fake_wa.add_number("1065550001", "EAAG-secret-token-123456")
    assert client_a.put(SETTINGS.format("tenant-a"), {"channels": WHATSAPP}, format="json").status_code == 200
    taken = assert_error(client_b.put(SETTINGS.format("tenant-b"), {"channels": WHATSAPP}, format="json"), 422,
                         "channel_verification_failed")
    invented = {"whatsapp": {**WHATSAPP["whatsapp"], "phone_number_id": "1065550009"}}
    assert assert_error(client_b.put(SETTINGS.format("tenant-b"), {"channels": invented}, format="json"), 422) == taken
