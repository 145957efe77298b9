"""Channel squatting: a tenant could connect another shop's WhatsApp phone_number_id or
Telegram bot with an invented token, and the real owner then got 409 channel_account_taken.
Connecting now asks the platform (Graph ``GET /{phone-number-id}`` with the token; Telegram
``getMe``) whether the credentials own the account, and a conflict with another tenant's
channel answers exactly like any failed verification, so nobody learns whose accounts are here."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from channels.models import ChannelConfig
from channels.tests.conftest import APP_SECRET_A, TG_TOKEN_A, WA_NUMBER_A, WA_TOKEN_A
from conftest import assert_error

pytestmark = pytest.mark.django_db
SETTINGS = "/tenants/{}/settings"


def _whatsapp(token: str, number: str = WA_NUMBER_A) -> dict:
    return {"channels": {"whatsapp": {"enabled": True, "phone_number_id": number, "access_token": token,
                                      "app_secret": APP_SECRET_A, "verify_token": "verify-me"}}}


def _put(client, tenant_id, body):
    return client.put(SETTINGS.format(tenant_id), body, format="json")


def test_a_squatter_with_an_invented_token_cannot_take_a_shops_number(tenant_a, tenant_b, client_a, client_b,
                                                                      fake_wa):
    fake_wa.add_number(WA_NUMBER_A, WA_TOKEN_A)  # the shop's number, known to Meta with the shop's token
    assert_error(_put(client_b, "tenant-b", _whatsapp("EAAGinventedBySquatter000000")), 422,
                 "channel_verification_failed")
    with scopes_disabled():
        assert not ChannelConfig.objects.exists()
    assert _put(client_a, "tenant-a", _whatsapp(WA_TOKEN_A)).status_code == 200  # the owner connects
    asked = fake_wa.lookups
    assert [(r.path, r.headers["Authorization"]) for r in asked] == [
        (f"/v21.0/{WA_NUMBER_A}", "Bearer EAAGinventedBySquatter000000"), (f"/v21.0/{WA_NUMBER_A}", f"Bearer {WA_TOKEN_A}")]


def test_a_number_claimed_without_its_token_is_refused(tenant_b, client_b, fake_wa):
    fake_wa.add_number(WA_NUMBER_A, WA_TOKEN_A)
    body = {"channels": {"whatsapp": {"phone_number_id": WA_NUMBER_A}}}  # not enabled: still a claim on the number
    assert_error(_put(client_b, "tenant-b", body), 422, "channel_verification_failed")


def test_a_squatter_cannot_take_a_shops_bot(tenant_a, tenant_b, client_a, client_b, fake_tg):
    fake_tg.add_bot(TG_TOKEN_A)
    invented = "7000000001:AAHinventedBySquatter_abcdefghijklm"  # the bot's id, any secret
    assert_error(_put(client_b, "tenant-b", {"channels": {"telegram": {"enabled": True, "bot_token": invented}}}),
                 422, "channel_verification_failed")
    body = {"channels": {"telegram": {"enabled": True, "bot_token": TG_TOKEN_A}}}
    assert _put(client_a, "tenant-a", body).status_code == 200
    with scopes_disabled():
        assert ChannelConfig.objects.get().tenant_id == "tenant-a"


def test_another_tenants_channel_answers_like_wrong_credentials(wa_a, tg_a, tenant_b, client_b, fake_wa, fake_tg):
    """Tenant A is connected. Tenant B, holding A's real credentials (or not), gets one answer."""
    taken = _put(client_b, "tenant-b", _whatsapp(WA_TOKEN_A))
    wrong = _put(client_b, "tenant-b", _whatsapp("EAAGsomethingElse00000000000"))
    assert (taken.status_code, taken.json()) == (wrong.status_code, wrong.json())
    assert_error(taken, 422, "channel_verification_failed")
    bot_taken = _put(client_b, "tenant-b", {"channels": {"telegram": {"bot_token": TG_TOKEN_A}}})
    bot_wrong = _put(client_b, "tenant-b", {"channels": {"telegram": {
        "bot_token": "7000000001:AAHnotTheRealOne_abcdefghijklmnopq"}}})
    assert (bot_taken.status_code, bot_taken.json()) == (bot_wrong.status_code, bot_wrong.json())


def test_changing_only_the_template_asks_nothing(wa_a, client_a, fake_wa):
    before = len(fake_wa.lookups)
    body = {"channels": {"whatsapp": {"followup_template": "tindak_lanjut"}}}
    assert _put(client_a, "tenant-a", body).status_code == 200
    assert len(fake_wa.lookups) == before
