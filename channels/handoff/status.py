"""A conversation between ``bot``, ``human`` and ``closed``: the switch
(``conversation_status_set``), the return to the bot when nobody on the team answers
(``handoff_resume_due``/``handoff_resume_if_due``), and the turns stored outside the chat
pipeline (``conversation_message_store``, ``customer_notify``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone
from django_q.tasks import async_task

from agent_project.errors import ApiError
from channels.base import CHANNELS
from channels.handoff.notices import NOTICE_PROVIDER, notice_text
from channels.models import HandoffEvent
from channels.services import channel_deliver
from contacts.services import contact_log_record
from conversations.models import Conversation, Message
from tenants import hours
from tenants.models import Tenant
from tenants.scoping import tenant_scope

logger = logging.getLogger(__name__)


def _is_open(tenant: Tenant) -> bool:
    try:
        return hours.opening_status(working_hours=tenant.working_hours, holidays=tenant.holidays,
                                    timezone=tenant.timezone, at=timezone.now()).is_open
    except Exception:  # malformed hours must not stop a handoff
        return True

def conversation_message_store(*, conversation: Conversation, role: str, text: str, bubbles: list[str] | None = None,
                               at=None, external_message_id: str | None = None, **fields) -> Message:
    """Store a turn that did not go through the chat pipeline (a customer message while
    a human has the conversation, an operator reply, a notice) and log it on the contact."""
    tenant = conversation.tenant
    message = Message.objects.create(tenant=tenant, conversation=conversation, role=role, content=text,
                                     bubbles=bubbles if bubbles is not None else ([text] if role != "user" else []),
                                     **fields)
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=message.created_at,
                                                           updated_at=message.created_at)
    if conversation.contact_id:
        contact_log_record(tenant=tenant, contact=conversation.contact, role=role, content=text,
                           channel=conversation.channel, at=at or message.created_at,
                           external_message_id=external_message_id, conversation_id=conversation.pk)
    return message


def customer_notify(*, conversation: Conversation, text: str) -> bool:
    """Tell the customer something on their channel and keep it in the conversation. On a
    channel we do not send on (web), storing it is the notice: the client reads it."""
    if conversation.channel in CHANNELS:
        outcomes = channel_deliver(tenant=conversation.tenant, channel=conversation.channel,
                                   user_id=conversation.user_id, texts=[text])
        if not outcomes or not all(o.ok for o in outcomes):
            return False
    conversation_message_store(conversation=conversation, role=Message.Role.ASSISTANT, text=text,
                               provider=NOTICE_PROVIDER, model="notice", finish_reason="notice")
    return True

def conversation_status_set(*, conversation: Conversation, status: str, reason: str, actor: str = "",
                            note: str = "", notify: bool = True) -> HandoffEvent | None:
    """Move a conversation to ``bot``, ``human`` or ``closed``.

    The switch is a conditional update under a row lock, so two operators (or an
    operator and the customer) switching at once make one change, not two events.
    Setting the status it already has changes nothing and answers None. Otherwise a
    :class:`HandoffEvent` is stored, the tenant's webhook gets a signed
    ``conversation.handoff`` event (a django-q2 task, after commit), and with
    ``notify`` the customer is told on their channel.
    """
    if status not in Conversation.Status.values:
        raise ApiError(400, "invalid_status", f"status must be one of {', '.join(Conversation.Status.values)}.",
                       details={"status": status})
    tenant = conversation.tenant
    with tenant_scope(tenant):
        with transaction.atomic():
            current = (Conversation.objects.select_for_update().filter(pk=conversation.pk)
                       .values_list("status", flat=True).first())
            if current is None:
                raise ApiError(404, "conversation_not_found", "No conversation with that id.")
            conversation.status = current
            if current == status:
                return None
            Conversation.objects.filter(pk=conversation.pk).update(status=status, updated_at=timezone.now())
            event = HandoffEvent.objects.create(
                tenant=tenant, conversation=conversation, from_status=current, to_status=status, reason=reason,
                actor=actor[:120], note=note, webhook_status="" if tenant.webhook_url else "skipped")
            if tenant.webhook_url:
                transaction.on_commit(lambda: async_task("channels.tasks.handoff_event_deliver", event.pk,
                                                         group="channels-events", cluster=settings.CHANNELS_Q_CLUSTER))
        conversation.status = status
        if notify:
            kind = {"human": "human_cannot_help" if reason == HandoffEvent.Reason.MODEL_CANNOT_HELP else "human",
                    "bot": "bot_timeout" if reason == HandoffEvent.Reason.NO_OPERATOR_REPLY else "bot",
                    "closed": "closed"}[status]
            text = notice_text(locale=tenant.locale, kind=kind, is_open=_is_open(tenant))
            event.customer_notified = customer_notify(conversation=conversation, text=text)
            HandoffEvent.objects.filter(pk=event.pk).update(customer_notified=event.customer_notified)
    logger.info("conversation %s of %s: %s → %s (%s by %s)", conversation.pk, tenant.pk, current, status, reason,
                actor or "-")
    return event

def handoff_resume_due(*, conversation: Conversation, tenant: Tenant, now=None) -> bool:
    """Has nobody on the team written in this ``human`` conversation for the tenant's
    ``handoff_resume_minutes``, counted from the later of its latest hand-over to ``human``
    and the operator's latest message? Never when the setting is empty or 0 (no query
    then); otherwise one query. A conversation with neither (made ``human`` outside the
    handoff service) counts from its creation."""
    minutes = tenant.handoff_resume_minutes
    if not minutes:
        return False
    with tenant_scope(tenant):
        handed = (HandoffEvent.objects.filter(conversation_id=conversation.pk, to_status=Conversation.Status.HUMAN)
                  .order_by("-created_at").values("created_at")[:1])
        replied = (Message.objects.filter(conversation_id=conversation.pk, role=Message.Role.OPERATOR)
                   .order_by("-created_at").values("created_at")[:1])
        row = (Conversation.objects.filter(pk=conversation.pk)
               .annotate(handed_at=Subquery(handed), replied_at=Subquery(replied))
               .values_list("created_at", "handed_at", "replied_at").first())
    if row is None:
        return False
    since = max(at for at in row if at is not None)
    return (now or timezone.now()) - since >= timedelta(minutes=minutes)


def handoff_resume_if_due(*, conversation: Conversation, tenant: Tenant, notify: bool = True) -> bool:
    """A customer wrote in a ``human`` conversation: when no operator has written for the
    tenant's resume time (``handoff_resume_due``), give it back to the bot (a
    ``no_operator_reply`` event by ``system``; with ``notify`` the customer is told the
    assistant takes over meanwhile) so the bot answers this message. Answers whether the
    bot has the conversation now. Costs nothing unless the conversation is ``human``."""
    if conversation.status != Conversation.Status.HUMAN:
        return False
    if not handoff_resume_due(conversation=conversation, tenant=tenant):
        return False
    conversation_status_set(conversation=conversation, status=Conversation.Status.BOT,
                            reason=HandoffEvent.Reason.NO_OPERATOR_REPLY, actor="system",
                            note=f"no operator message for {tenant.handoff_resume_minutes} minutes", notify=notify)
    return conversation.status == Conversation.Status.BOT


def last_assistant_reply(conversation: Conversation) -> str:
    """The newest thing the bot said in the conversation (one indexed query)."""
    return (conversation.messages.filter(role=Message.Role.ASSISTANT).order_by("-created_at", "-id")
            .values_list("content", flat=True).first() or "")
