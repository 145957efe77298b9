"""Per-tenant channel configuration: secrets encrypted at rest and never returned,
validation with clear errors, nothing saved on a failed update, one account per tenant."""

from __future__ import annotations

import pytest
from django.db import connection
from django_scopes import scopes_disabled

from agent_project.errors import ApiError
from channels.models import ChannelConfig
from channels.services import channel_config_public, channel_config_update
from channels.tests.conftest import APP_SECRET_A, TG_TOKEN_A, WA_NUMBER_A, WA_TOKEN_A

pytestmark = pytest.mark.django_db


def test_secrets_are_encrypted_in_the_database_and_masked_in_the_api(wa_a):
    with connection.cursor() as cursor:
        cursor.execute("SELECT whatsapp_access_token, whatsapp_app_secret, whatsapp_verify_token "
                       "FROM channels_channelconfig WHERE tenant_id = %s", [wa_a.pk])
        stored = cursor.fetchone()
    assert all(value.startswith("fernet:") for value in stored)
    assert WA_TOKEN_A not in "".join(stored) and APP_SECRET_A not in "".join(stored)
    public = channel_config_public(tenant=wa_a)
    flat = repr(public)
    assert WA_TOKEN_A not in flat and APP_SECRET_A not in flat and "verify-me-a" not in flat
    assert public["whatsapp"] == {
        "enabled": True, "phone_number_id": WA_NUMBER_A, "access_token_set": True,
        "access_token_hint": "••••0000", "app_secret_set": True, "app_secret_hint": "••••nt-a",
        "verify_token_set": True, "verify_token_hint": "••••", "followup_template": "",
        "template_language": "id", "ready": True, "webhook_path": "/channels/whatsapp/tenant-a/webhook"}
    assert public["telegram"]["ready"] is False and public["telegram"]["bot_token_set"] is False


def test_a_partial_update_keeps_the_rest_and_null_clears_a_secret(wa_a):
    channel_config_update(tenant=wa_a, data={"whatsapp": {"followup_template": "tindak_lanjut"}})
    with scopes_disabled():
        config = ChannelConfig.objects.get(tenant=wa_a)
    assert config.whatsapp_access_token == WA_TOKEN_A and config.whatsapp_followup_template == "tindak_lanjut"
    channel_config_update(tenant=wa_a, data={"whatsapp": {"enabled": False, "access_token": None}})
    with scopes_disabled():
        config = ChannelConfig.objects.get(tenant=wa_a)
    assert config.whatsapp_access_token == "" and config.whatsapp_app_secret == APP_SECRET_A


def test_telegram_secret_is_generated_when_enabling(tenant_a, fake_tg):
    fake_tg.add_bot(TG_TOKEN_A)
    public = channel_config_update(tenant=tenant_a, data={"telegram": {"enabled": True, "bot_token": TG_TOKEN_A}})
    assert public["telegram"]["webhook_secret_set"] is True and public["telegram"]["ready"] is True
    with scopes_disabled():
        config = ChannelConfig.objects.get(tenant=tenant_a)
    assert config.telegram_bot_id == "7000000001" and len(config.telegram_webhook_secret) >= 32


@pytest.mark.parametrize("data,status,code", [
    ({"sms": {}}, 400, "unknown_channel"),
    ({"whatsapp": {"token": "x"}}, 400, "unknown_channel_field"),
    ({"whatsapp": "yes"}, 400, "invalid_channel_settings"),
    ({"whatsapp": {"enabled": "yes"}}, 400, "invalid_channel_setting"),
    ({"whatsapp": {"access_token": ""}}, 422, "channel_incomplete"),  # still enabled, now without a token
    ({"whatsapp": {"phone_number_id": "+62 811"}}, 400, "invalid_channel_setting"),
    ({"whatsapp": {"access_token": 12345}}, 400, "invalid_channel_setting"),
    ({"telegram": {"bot_token": "not-a-token"}}, 400, "invalid_channel_setting"),
    ({"telegram": {"webhook_secret": "has spaces!"}}, 400, "invalid_channel_setting"),
    ({"telegram": {"enabled": True}}, 422, "channel_incomplete"),
])
def test_bad_settings_are_refused_and_nothing_changes(wa_a, data, status, code):
    before = channel_config_public(tenant=wa_a)
    with pytest.raises(ApiError) as raised:
        channel_config_update(tenant=wa_a, data=data)
    assert (raised.value.status_code, raised.value.code) == (status, code)
    assert channel_config_public(tenant=wa_a) == before


def test_one_whatsapp_number_and_one_bot_per_tenant(wa_a, tg_a, tenant_b):
    """Even with the real token (the same business connecting twice), a second tenant gets
    the answer of any verification failure, not a "taken" that would tell whose it is."""
    with pytest.raises(ApiError) as raised:
        channel_config_update(tenant=tenant_b, data={"whatsapp": {"phone_number_id": WA_NUMBER_A,
                                                                  "access_token": WA_TOKEN_A}})
    assert (raised.value.status_code, raised.value.code) == (422, "channel_verification_failed")
    with pytest.raises(ApiError) as raised:
        channel_config_update(tenant=tenant_b, data={"telegram": {"bot_token": TG_TOKEN_A}})
    assert raised.value.code == "channel_verification_failed"
    with scopes_disabled():
        assert not ChannelConfig.objects.filter(tenant=tenant_b).exists()


def test_secrets_unreadable_after_a_key_change_read_as_unset(wa_a, settings, anon_client):
    """SECRET_KEY changed without SECRETS_ENCRYPTION_KEY: the channel stops (404) instead of crashing."""
    settings.SECRET_KEY = "a-different-secret-key-for-this-deployment"
    with scopes_disabled():
        config = ChannelConfig.objects.get(tenant=wa_a)
    assert config.whatsapp_access_token == "" and config.whatsapp_ready is False
    response = anon_client.get(f"/channels/whatsapp/{wa_a.pk}/webhook",
                               {"hub.mode": "subscribe", "hub.verify_token": "verify-me-a", "hub.challenge": "1"})
    assert response.status_code == 404
