"""What happens to a customer message that arrived through a channel webhook.

``inbound_record`` (in the webhook request) stores it once per platform message id;
``inbound_handle`` (in the django-q2 task) claims it with a conditional update, so a
redelivery or a re-run of the task never processes it twice, then:

* finds or creates the contact and the conversation;
* a closed conversation is reopened for the bot when the customer writes again;
* while a human has the conversation the bot stays silent: the message is stored for
  the operator and nothing is sent — unless no operator has written in it for the
  tenant's ``handoff_resume_minutes``, when it goes back to the bot, which answers;
* a customer asking for a person is handed over (notice + tenant webhook event);
* otherwise the chat pipeline answers and its bubbles are sent in order; a reply in
  which the assistant says it cannot help hands the conversation to a person (when the
  tenant's ``handoff_on_unanswered`` is on);
* a photo, voice note, sticker… gets a polite "text only, please" and is logged.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agent_project.errors import ApiError
from agent_project.lib.llm import ChatTurn
from channels import handoff
from channels.base import WHATSAPP, InboundItem
from channels.models import HandoffEvent, InboundMessage
from channels.services import channel_deliver
from contacts.services import contact_for_channel
from conversations.models import Conversation, Message
from conversations.services import chat_complete, chat_prepare, conversation_for
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger(__name__)


def inbound_record(*, tenant: Tenant, channel: str, item: InboundItem) -> tuple[InboundMessage, bool]:
    """Store one delivered message; ``(row, created)``. A message id seen before answers
    the stored row with ``created`` False (the platform redelivered it)."""
    with tenant_scope(tenant):
        existing = InboundMessage.objects.filter(channel=channel, external_id=item.external_id[:200]).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                row = InboundMessage.objects.create(
                    tenant=tenant, channel=channel, external_id=item.external_id[:200], user_id=item.user_id[:200],
                    name=item.name[:200], kind=item.kind[:32], text=item.text, sent_at=item.sent_at)
                return row, True
        except IntegrityError:  # the same delivery, concurrently
            return InboundMessage.objects.get(channel=channel, external_id=item.external_id[:200]), False


def _claim(inbound: InboundMessage) -> bool:
    return bool(InboundMessage.objects.filter(pk=inbound.pk, status=InboundMessage.Status.RECEIVED)
                .update(status=InboundMessage.Status.PROCESSING, attempts=F("attempts") + 1))


def _finish(inbound: InboundMessage, *, outcome: str, status=InboundMessage.Status.DONE, error: str = "",
            conversation: Conversation | None = None) -> str:
    InboundMessage.objects.filter(pk=inbound.pk).update(
        status=status, outcome=outcome[:64], error=error[:2000], processed_at=timezone.now(),
        conversation=conversation)
    return outcome


def inbound_handle(*, inbound: InboundMessage) -> str:
    """Process one stored message (see the module doc). Answers the outcome:
    ``replied``, ``handoff``, ``model_handoff``, ``silent_human``, ``media_reply``,
    ``duplicate`` (already taken), or a failure code (``send_failed``, ``llm_…``)."""
    tenant = inbound.tenant
    with tenant_scope(tenant):
        if not _claim(inbound):
            return "duplicate"
        try:
            return _handle(tenant, inbound)
        except Exception as exc:
            logger.exception("channels: inbound %s of %s failed", inbound.pk, tenant.pk)
            _finish(inbound, outcome="internal_error", status=InboundMessage.Status.FAILED,
                    error=f"{type(exc).__name__}: {exc}")
            raise


def _handle(tenant: Tenant, inbound: InboundMessage) -> str:
    channel = inbound.channel
    phone = "+" + inbound.user_id if channel == WHATSAPP and inbound.user_id.isdigit() else None
    contact = contact_for_channel(tenant=tenant, channel=channel, external_id=inbound.user_id, name=inbound.name,
                                  phone=phone, at=inbound.sent_at)
    conversation = conversation_for(tenant=tenant, channel=channel, user_id=inbound.user_id, contact=contact)
    conversation.contact = contact

    if conversation.status == Conversation.Status.CLOSED:
        # The customer wrote again after the conversation was closed: the bot takes it up.
        handoff.conversation_status_set(conversation=conversation, status=Conversation.Status.BOT,
                                        reason=HandoffEvent.Reason.CUSTOMER_MESSAGE, actor="customer", notify=False)
    if conversation.status == Conversation.Status.HUMAN:
        # Nobody on the team has answered for the tenant's resume time: the bot takes this
        # message. Asking for a person again skips the "assistant is back" notice: the
        # conversation is handed over afresh below.
        asks_for_person = inbound.kind == "text" and handoff.wants_human(inbound.text)
        handoff.handoff_resume_if_due(conversation=conversation, tenant=tenant, notify=not asks_for_person)

    if inbound.kind != "text" or not inbound.text:
        content = f"[{inbound.kind}]" + (f" {inbound.text}" if inbound.text else "")
        handoff.conversation_message_store(conversation=conversation, role=Message.Role.USER, text=content,
                                           at=inbound.sent_at, external_message_id=inbound.external_id)
        if conversation.status == Conversation.Status.HUMAN:
            return _finish(inbound, outcome="silent_human", conversation=conversation)
        notified = handoff.customer_notify(conversation=conversation,
                                           text=handoff.notice_text(locale=tenant.locale, kind="media"))
        return _finish(inbound, outcome="media_reply" if notified else "send_failed", conversation=conversation,
                       status=InboundMessage.Status.DONE if notified else InboundMessage.Status.FAILED)

    if conversation.status == Conversation.Status.HUMAN:
        # A person has this conversation: keep the message for them, say nothing.
        handoff.conversation_message_store(conversation=conversation, role=Message.Role.USER, text=inbound.text,
                                           at=inbound.sent_at, external_message_id=inbound.external_id)
        return _finish(inbound, outcome="silent_human", conversation=conversation)

    if handoff.wants_human(inbound.text):
        handoff.conversation_message_store(conversation=conversation, role=Message.Role.USER, text=inbound.text,
                                           at=inbound.sent_at, external_message_id=inbound.external_id)
        event = handoff.conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                                reason=HandoffEvent.Reason.CUSTOMER_REQUEST, actor="customer")
        ok = event is None or event.customer_notified
        return _finish(inbound, outcome="handoff" if ok else "send_failed", conversation=conversation,
                       status=InboundMessage.Status.DONE if ok else InboundMessage.Status.FAILED)

    try:
        prepared = chat_prepare(tenant=tenant, user_id=inbound.user_id, channel=channel,
                                messages=[ChatTurn(role="user", content=inbound.text)], locale=tenant.locale,
                                name=inbound.name)
        result = chat_complete(prepared)
    except ApiError as exc:
        # The model failed; the customer's message is stored (chat_prepare did it). Say sorry.
        handoff.customer_notify(conversation=conversation,
                                text=handoff.notice_text(locale=tenant.locale, kind="unavailable"))
        return _finish(inbound, outcome=exc.code, status=InboundMessage.Status.FAILED, error=exc.message,
                       conversation=conversation)

    outcomes = channel_deliver(tenant=tenant, channel=channel, user_id=inbound.user_id, texts=result.bubbles)
    failed = next((o for o in outcomes if not o.ok), None)
    if failed is not None:
        return _finish(inbound, outcome="send_failed", status=InboundMessage.Status.FAILED, error=failed.detail,
                       conversation=conversation)
    if tenant.handoff_on_unanswered and handoff.model_cannot_help(result.reply):
        handoff.conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                        reason=HandoffEvent.Reason.MODEL_CANNOT_HELP, actor="assistant")
        return _finish(inbound, outcome="model_handoff", conversation=conversation)
    return _finish(inbound, outcome="replied", conversation=conversation)
