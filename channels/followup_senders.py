"""Follow-up senders for WhatsApp and Telegram, registered in ``followups.senders.SENDERS``.

A follow-up scheduled on channel ``whatsapp`` or ``telegram`` (with the contact's
channel id as ``user_id``) goes out through the tenant's own bot or number. WhatsApp's
24-hour rule applies: outside the window the tenant's approved follow-up template is
used, or the follow-up fails permanently with ``whatsapp_window_closed`` when none is
configured. Platform answers map onto the dispatcher's outcomes: rate limits and
outages retry with its backoff, everything else fails with the platform's reason.
"""

from __future__ import annotations

from channels.base import TELEGRAM, WHATSAPP
from channels.services import channel_send_followup


class _ChannelSender:
    name = ""

    def send(self, *, followup, text: str):
        # Imported here: followups.senders imports this module to register the senders.
        from followups.senders import SendResult

        result = channel_send_followup(tenant=followup.tenant, channel=self.name, user_id=followup.user_id, text=text)
        return SendResult(result.outcome, result.detail + (f" [{result.message_id}]" if result.message_id else ""),
                          result.status_code, result.retry_after)


class WhatsAppSender(_ChannelSender):
    name = WHATSAPP


class TelegramSender(_ChannelSender):
    name = TELEGRAM
