"""An operator's reply to the customer: sent on the channel first, stored once delivered, and
taking the conversation over."""

from __future__ import annotations

from agent_project.errors import ApiError
from channels.base import CHANNELS, SendOutcome
from channels.handoff.status import conversation_message_store, conversation_status_set
from channels.models import HandoffEvent
from channels.services import channel_deliver, fit_to_limit
from conversations.models import Conversation, Message
from tenants.scoping import tenant_scope

MAX_OPERATOR_REPLY_CHARS = 8000


def _send_failure(outcome: SendOutcome, delivered: int) -> ApiError:
    details = {"platform_code": outcome.code, "detail": outcome.detail, "delivered_parts": delivered}
    if outcome.detail.startswith("whatsapp_window_closed") or outcome.code == "131047":
        return ApiError(409, "whatsapp_window_closed",
                        "The customer last wrote more than 24 hours ago: WhatsApp only allows a template message now.",
                        details=details)
    if outcome.code == "channel_not_configured":
        return ApiError(409, "channel_not_configured", "This conversation's channel is not set up for the tenant.",
                        details=details)
    return ApiError(502, "channel_send_failed", "The message could not be delivered on the channel.",
                    details={**details, "retryable": outcome.outcome == "retry"})


def operator_reply(*, conversation: Conversation, text: str, actor: str) -> Message:
    """An operator's message to the customer: sent on the channel first, stored only once
    delivered (a failed send changes nothing). Replying takes the conversation over: a
    conversation the bot or nobody had becomes ``human`` (without a notice: the reply is one)."""
    text = (text or "").strip()
    if not text:
        raise ApiError(422, "empty_reply", "The reply is empty.")
    if len(text) > MAX_OPERATOR_REPLY_CHARS:
        raise ApiError(422, "reply_too_long", f"A reply may be at most {MAX_OPERATOR_REPLY_CHARS} characters.",
                       details={"max_chars": MAX_OPERATOR_REPLY_CHARS})
    pieces = [text]
    if conversation.channel in CHANNELS:
        pieces = fit_to_limit(text, conversation.channel)
        outcomes = channel_deliver(tenant=conversation.tenant, channel=conversation.channel,
                                   user_id=conversation.user_id, texts=pieces)
        failed = next((o for o in outcomes if not o.ok), None)
        if failed is not None:
            raise _send_failure(failed, delivered=sum(1 for o in outcomes if o.ok))
    with tenant_scope(conversation.tenant):
        message = conversation_message_store(conversation=conversation, role=Message.Role.OPERATOR, text=text,
                                             bubbles=pieces, provider="operator", model=actor[:100])
        if conversation.status != Conversation.Status.HUMAN:
            conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                    reason=HandoffEvent.Reason.OPERATOR, actor=actor, notify=False)
    return message
