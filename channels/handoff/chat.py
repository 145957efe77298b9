"""The /chat route's handoff hook: ``conversations.api.ChatView`` calls
``chat_handoff_before``/``chat_handoff_after`` around the model (through
``conversations.handoff``, where ``channels.apps`` registers them), so a web or API
conversation follows the same rules as WhatsApp and Telegram (``channels.inbound``)."""

from __future__ import annotations

from channels.handoff.detection import is_short_yes, model_cannot_help, offered_person, wants_human
from channels.handoff.notices import NOTICE_PROVIDER, notice_text
from channels.handoff.status import conversation_status_set, handoff_resume_if_due
from channels.models import HandoffEvent
from conversations.models import Conversation


def chat_handoff_before(prepared) -> dict | None:
    """Before the model: ``None`` when the bot should answer, else the /chat answer to give
    instead — empty while a person has the conversation (the customer's turn is already
    stored for them), or the handoff notice when the customer just asked for a person.
    A closed conversation is reopened for the bot by a new customer message; a ``human``
    one nobody on the team has answered for the tenant's ``handoff_resume_minutes`` goes
    back to the bot, which answers this message. Only a ``human`` (or ``closed``)
    conversation costs queries here."""
    conversation = prepared.conversation
    text = prepared.user_message.content
    asks_for_person = wants_human(text) or (is_short_yes(text)
                                            and offered_person(_last_reply(prepared.prompt.messages[:-1])))
    if conversation.status == Conversation.Status.CLOSED:
        conversation_status_set(conversation=conversation, status=Conversation.Status.BOT,
                                reason=HandoffEvent.Reason.CUSTOMER_MESSAGE, actor="customer", notify=False)
    if conversation.status == Conversation.Status.HUMAN:
        # Asking for a person again after the wait: back to the bot without its notice,
        # then handed over afresh below (a new event for the team, the handoff notice for them).
        if not handoff_resume_if_due(conversation=conversation, tenant=prepared.tenant, notify=not asks_for_person):
            return _chat_answer(prepared, reply="", finish_reason="human")
    if asks_for_person:
        conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                reason=HandoffEvent.Reason.CUSTOMER_REQUEST, actor="customer", notify=True)
        notice = notice_text(locale=prepared.locale, kind="human", is_open=prepared.opening.is_open)
        return _chat_answer(prepared, reply=notice, finish_reason="handoff")
    return None


def _last_reply(turns) -> str:
    return next((turn.content for turn in reversed(turns) if turn.role == "assistant"), "")


def chat_handoff_after(prepared, reply: str) -> str:
    """After the reply is stored: hand over when the assistant said it cannot help and the
    tenant hands unanswered questions over (``Tenant.handoff_on_unanswered``; otherwise the
    reply is all, and the bot keeps the conversation). The notice is stored in the
    conversation (the client reads it with the next poll) and, on a channel we send on,
    delivered there. Answers the conversation's status."""
    if prepared.tenant.handoff_on_unanswered and model_cannot_help(reply):
        conversation_status_set(conversation=prepared.conversation, status=Conversation.Status.HUMAN,
                                reason=HandoffEvent.Reason.MODEL_CANNOT_HELP, actor="assistant", notify=True)
    return prepared.conversation.status


def _chat_answer(prepared, *, reply: str, finish_reason: str) -> dict:
    """The /chat response body, same keys as a model answer, with no model call."""
    return {
        "conversation_id": prepared.conversation.pk, "message_id": None, "reply": reply,
        "bubbles": [reply] if reply else [], "sources": [], "tool_calls": [], "provider": NOTICE_PROVIDER,
        "model": "",
        "finish_reason": finish_reason,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "within_working_hours": prepared.opening.is_open, "timings_ms": prepared.timings,
        "status": prepared.conversation.status,
    }
