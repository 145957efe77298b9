"""Follow-ups delivered through each channel by the follow-up dispatcher (its real
claim → send → record path), including WhatsApp's 24-hour window rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scopes_disabled

from channels.base import InboundItem
from channels.inbound import inbound_record
from channels.services import channel_config_update
from contacts.services import contact_for_channel
from followups.dispatch import followups_dispatch
from followups.models import FollowUp
from followups.services import followup_schedule

pytestmark = pytest.mark.django_db
WA_ID = "6281234567890"


def _customer_wrote(tenant, fake_wa, *, hours_ago: float):
    at = datetime.now(tz=UTC) - timedelta(hours=hours_ago)
    inbound_record(tenant=tenant, channel="whatsapp", item=InboundItem(
        external_id=f"wamid.{hours_ago}", user_id=WA_ID, kind="text", text="Halo", sent_at=at))
    fake_wa.customer_wrote(WA_ID, at)


def _schedule(tenant, channel, user_id, message="Halo {name}, buket Anda sudah siap diambil."):
    contact_for_channel(tenant=tenant, channel=channel, external_id=user_id, name="Budi")
    followup, _ = followup_schedule(tenant=tenant, user_id=user_id, channel=channel, message=message)
    return followup


def _dispatch_and_reload(followup):
    followups_dispatch(window_seconds=0, watch=False)
    with scopes_disabled():
        return FollowUp.objects.get(pk=followup.pk)


def test_followup_delivered_on_whatsapp_inside_the_window(wa_a, fake_wa):
    _customer_wrote(wa_a, fake_wa, hours_ago=3)
    followup = _dispatch_and_reload(_schedule(wa_a, "whatsapp", WA_ID))
    assert followup.status == "sent", followup.last_error
    assert fake_wa.texts(WA_ID) == ["Halo Budi, buket Anda sudah siap diambil."]


def test_followup_outside_the_window_goes_as_the_template(wa_a, fake_wa):
    channel_config_update(tenant=wa_a, data={"whatsapp": {"followup_template": "tindak_lanjut"}})
    fake_wa.approve_template("tindak_lanjut", "id")
    _customer_wrote(wa_a, fake_wa, hours_ago=40)
    followup = _dispatch_and_reload(_schedule(wa_a, "whatsapp", WA_ID))
    assert followup.status == "sent", followup.last_error
    [sent] = fake_wa.sent
    assert sent["type"] == "template"
    assert sent["template"]["components"][0]["parameters"][0]["text"] == "Halo Budi, buket Anda sudah siap diambil."


def test_followup_outside_the_window_without_a_template_fails_clearly(wa_a, fake_wa):
    _customer_wrote(wa_a, fake_wa, hours_ago=40)
    followup = _dispatch_and_reload(_schedule(wa_a, "whatsapp", WA_ID))
    assert followup.status == "failed" and followup.attempts == 1
    assert followup.last_error.startswith("whatsapp_window_closed") and "template" in followup.last_error
    assert fake_wa.requests == []


def test_followup_delivered_on_telegram(tg_a, fake_tg):
    fake_tg.add_chat(5550001)
    followup = _dispatch_and_reload(_schedule(tg_a, "telegram", "5550001"))
    assert followup.status == "sent", followup.last_error
    assert fake_tg.texts("5550001") == ["Halo Budi, buket Anda sudah siap diambil."]


def test_telegram_flood_control_becomes_a_dispatcher_retry(tg_a, fake_tg):
    fake_tg.add_chat(5550001)
    fake_tg.fail_next(429, "Too Many Requests: retry after 120", retry_after=120)
    followup = _dispatch_and_reload(_schedule(tg_a, "telegram", "5550001"))
    assert followup.status == "pending" and "telegram_error_429" in followup.last_error
    assert followup.next_attempt_at >= datetime.now(tz=UTC) + timedelta(seconds=100)  # retry_after honoured


def test_a_blocked_bot_fails_permanently(tg_a, fake_tg):
    fake_tg.add_chat(5550001)
    fake_tg.blocked.add("5550001")
    followup = _dispatch_and_reload(_schedule(tg_a, "telegram", "5550001"))
    assert followup.status == "failed" and "blocked" in followup.last_error


def test_a_tenant_without_the_channel_keeps_the_webhook_sender(tenant_a, receiver, hooked):
    """Not connected to WhatsApp: the follow-up goes to the tenant's signed webhook, as before."""
    from channels.tests.support import signature_ok

    tenant = hooked(tenant_a)
    followup = _dispatch_and_reload(_schedule(tenant, "whatsapp", WA_ID))
    assert followup.status == "sent", followup.last_error
    [(headers, body)] = receiver.received
    assert signature_ok(tenant.webhook_secret, headers, body) and b"buket Anda sudah siap" in body
