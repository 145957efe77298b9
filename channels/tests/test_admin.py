"""The operator console: channel settings never show a secret and keep one left blank;
the operator inbox replies on the channel, takes over and hands back."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from channels.models import ChannelConfig, HandoffEvent
from channels.tests.conftest import APP_SECRET_A, TG_TOKEN_A, WA_TOKEN_A
from conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db


def _config(tenant):
    with scopes_disabled():
        return ChannelConfig.objects.get(tenant=tenant)


def _form(config, **changes):
    data = {"tenant": config.tenant_id, "whatsapp_enabled": "on" if config.whatsapp_enabled else "",
            "whatsapp_phone_number_id": config.whatsapp_phone_number_id, "whatsapp_access_token": "",
            "whatsapp_app_secret": "", "whatsapp_verify_token": "",
            "whatsapp_followup_template": config.whatsapp_followup_template,
            "whatsapp_template_language": config.whatsapp_template_language,
            "telegram_enabled": "on" if config.telegram_enabled else "", "telegram_bot_token": "",
            "telegram_webhook_secret": ""}
    data.update(changes)
    # an unticked checkbox is simply absent from a browser's POST
    return {k: v for k, v in data.items() if v or not (k.endswith("_enabled") or k.startswith("clear_"))}


def test_channel_settings_page_never_shows_a_secret(admin_client, wa_a):
    config = _config(wa_a)
    for url in ("/admin/channels/channelconfig/", f"/admin/channels/channelconfig/{config.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert WA_TOKEN_A not in html and APP_SECRET_A not in html and "verify-me-a" not in html
    assert "••••0000" in html


def test_a_blank_secret_keeps_the_stored_one_and_clear_removes_it(admin_client, wa_a):
    config = _config(wa_a)
    url = f"/admin/channels/channelconfig/{config.pk}/change/"
    response = admin_client.post(url, _form(config, whatsapp_followup_template="tindak_lanjut"))
    assert response.status_code == 302, response.content.decode()[:3000]
    config = _config(wa_a)
    assert config.whatsapp_access_token == WA_TOKEN_A and config.whatsapp_followup_template == "tindak_lanjut"

    response = admin_client.post(url, _form(config, whatsapp_enabled="", clear_whatsapp_access_token="on"))
    assert response.status_code == 302
    assert _config(wa_a).whatsapp_access_token == "" and _config(wa_a).whatsapp_app_secret == APP_SECRET_A


def test_an_invalid_setting_is_a_form_error(admin_client, wa_a):
    config = _config(wa_a)
    response = admin_client.post(f"/admin/channels/channelconfig/{config.pk}/change/",
                                 _form(config, telegram_bot_token="not-a-token"))
    assert response.status_code == 200 and "does not look like a token" in response.content.decode()
    assert _config(wa_a).telegram_bot_token == ""


def test_admin_registers_the_telegram_webhook(admin_client, tg_a, fake_tg):
    config = _config(tg_a)
    response = admin_client.post("/admin/channels/channelconfig/", {
        "action": "register_telegram_webhook", "_selected_action": [config.pk]}, follow=True)
    assert "webhook set" in response.content.decode()
    assert fake_tg.webhooks[TG_TOKEN_A]["url"].endswith("/channels/telegram/tenant-a/webhook")


@pytest.fixture
def tg_conversation(tg_a, fake_tg, scoped):
    fake_tg.add_chat(5550001)
    with scoped(tg_a):
        return Conversation.objects.create(tenant=tg_a, channel="telegram", user_id="5550001", status="human")


def test_operator_replies_from_the_inbox_and_hands_back(admin_client, tg_conversation, fake_tg):
    url = f"/admin/channels/operatorconversation/{tg_conversation.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    response = admin_client.post(url, {"reply": "Halo Kak, ada yang bisa dibantu?", "set_status": "", "notify": ""},
                                 follow=True)
    assert "Reply sent." in response.content.decode()
    assert fake_tg.texts("5550001") == ["Halo Kak, ada yang bisa dibantu?"]
    admin_client.post(url, {"reply": "", "set_status": "bot", "notify": "on"})
    tg_conversation.refresh_from_db()
    assert tg_conversation.status == "bot"
    assert "asisten otomatis" in fake_tg.texts("5550001")[-1]
    with scopes_disabled():
        assert list(Message.objects.filter(conversation=tg_conversation).values_list("role", flat=True)) == [
            "operator", "assistant"]
        event = HandoffEvent.objects.get()
    assert (event.to_status, event.actor) == ("bot", "admin:admin")


def test_a_failed_reply_is_shown_and_not_stored(admin_client, tg_conversation, fake_tg):
    fake_tg.blocked.add("5550001")
    response = admin_client.post(f"/admin/channels/operatorconversation/{tg_conversation.pk}/change/",
                                 {"reply": "Halo", "set_status": ""}, follow=True)
    assert "Not sent" in response.content.decode()
    with scopes_disabled():
        assert not Message.objects.filter(conversation=tg_conversation).exists()


def test_take_over_action(admin_client, tg_a, fake_tg, scoped):
    fake_tg.add_chat(5550002)
    with scoped(tg_a):
        conv = Conversation.objects.create(tenant=tg_a, channel="telegram", user_id="5550002")
    admin_client.post("/admin/channels/operatorconversation/", {"action": "take_over", "_selected_action": [conv.pk]})
    conv.refresh_from_db()
    assert conv.status == "human" and len(fake_tg.texts("5550002")) == 1


def test_a_failed_reply_is_not_reported_as_a_successful_change(operator, tg_conversation, fake_tg):
    fake_tg.blocked.add("5550001")
    response = operator.post(f"/admin/channels/operatorconversation/{tg_conversation.pk}/change/",
                             {"reply": "Halo", "set_status": ""}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert any("Not sent" in m for m in shown), shown
    assert not any("changed successfully" in m for m in shown), shown


def test_a_failed_reply_is_not_audited_as_an_update(operator, tg_conversation, fake_tg):
    """Nothing changed, so neither the history nor the audit trail records an update."""
    from agent_project.models import AuditEvent

    fake_tg.blocked.add("5550001")
    operator.post(f"/admin/channels/operatorconversation/{tg_conversation.pk}/change/",
                  {"reply": "Halo", "set_status": ""})
    assert not AuditEvent.objects.filter(object_id=str(tg_conversation.pk), action="update").exists()
