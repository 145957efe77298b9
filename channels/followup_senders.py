"""Follow-up senders for WhatsApp and Telegram, registered with ``followups.senders.register_sender``
by ``channels.apps`` at start.

A follow-up scheduled on channel ``whatsapp`` or ``telegram`` (with the contact's
channel id as ``user_id``) goes out through the tenant's own bot or number. WhatsApp's
24-hour rule applies: outside the window the tenant's approved follow-up template is
used, or the follow-up fails permanently with ``whatsapp_window_closed`` when none is
configured. Platform answers map onto the dispatcher's outcomes: rate limits and
outages retry with its backoff, everything else fails with the platform's reason.

A tenant that has not connected that channel keeps the behaviour it had before channels
existed: the follow-up goes to ``FOLLOWUP_DEFAULT_SENDER`` (the signed webhook, through
which the tenant's own system relays it).
"""

from __future__ import annotations

from channels.base import TELEGRAM, WHATSAPP
from channels.services import channel_config_get, channel_send_followup
from followups.senders import SendResult, default_sender


class _ChannelSender:
    name = ""

    def send(self, *, followup, text: str) -> SendResult:
        config = channel_config_get(tenant=followup.tenant)
        if config is None or not (config.whatsapp_ready if self.name == WHATSAPP else config.telegram_ready):
            return default_sender().send(followup=followup, text=text)
        result = channel_send_followup(tenant=followup.tenant, channel=self.name, user_id=followup.user_id, text=text)
        return SendResult(result.outcome, result.detail + (f" [{result.message_id}]" if result.message_id else ""),
                          result.status_code, result.retry_after)


class WhatsAppSender(_ChannelSender):
    name = WHATSAPP


class TelegramSender(_ChannelSender):
    name = TELEGRAM
