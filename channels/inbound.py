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

``inbound_recover`` (a cross-tenant job, every minute) re-queues a row whose worker was
killed mid-message or whose task was lost, or abandons it after too many attempts or a day.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task
from django_scopes import scopes_disabled

from agent_project.errors import ApiError
from agent_project.lib.llm import ChatTurn
from channels.base import InboundItem
from channels.handoff.detection import is_short_yes, model_cannot_help, offered_person, wants_human
from channels.handoff.notices import notice_text
from channels.handoff.status import (conversation_message_store, conversation_status_set, customer_notify,
                                     handoff_resume_if_due, last_assistant_reply)
from channels.models import HandoffEvent, InboundMessage
from channels.services import channel_deliver
from contacts.services import contact_for_channel
from conversations.models import Conversation, Message
from conversations.services import chat_complete, chat_prepare, conversation_for, reply_locale
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


def inbound_enqueue(inbound_id: int, *, channel: str) -> None:
    """Queue ``channels.tasks.inbound_process`` for a stored row once the transaction commits
    (at once outside one): the webhook and the recoverer both enqueue through here."""
    transaction.on_commit(lambda: async_task("channels.tasks.inbound_process", inbound_id,
                                             group=f"channels-{channel}", cluster=settings.CHANNELS_Q_CLUSTER))


def _claim(inbound: InboundMessage) -> bool:
    # claimed_at starts the clock of channels.tasks.inbound_recover: a worker killed now
    # leaves the row processing, and the recoverer re-queues it once this is stale.
    return bool(InboundMessage.objects.filter(pk=inbound.pk, status=InboundMessage.Status.RECEIVED)
                .update(status=InboundMessage.Status.PROCESSING, attempts=F("attempts") + 1,
                        claimed_at=timezone.now()))


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
    # a WhatsApp id is a number: contact_for_channel finds the contact that has it as phone
    contact = contact_for_channel(tenant=tenant, channel=channel, external_id=inbound.user_id, name=inbound.name,
                                  at=inbound.sent_at)
    conversation = conversation_for(tenant=tenant, channel=channel, user_id=inbound.user_id, contact=contact)
    conversation.contact = contact

    if conversation.status == Conversation.Status.CLOSED:
        # The customer wrote again after the conversation was closed: the bot takes it up.
        conversation_status_set(conversation=conversation, status=Conversation.Status.BOT,
                                reason=HandoffEvent.Reason.CUSTOMER_MESSAGE, actor="customer", notify=False)
    if conversation.status == Conversation.Status.HUMAN:
        # Nobody on the team has answered for the tenant's resume time: the bot takes this
        # message. Asking for a person again skips the "assistant is back" notice: the
        # conversation is handed over afresh below.
        asks_for_person = inbound.kind == "text" and wants_human(inbound.text)
        handoff_resume_if_due(conversation=conversation, tenant=tenant, notify=not asks_for_person)

    if inbound.kind != "text" or not inbound.text:
        content = f"[{inbound.kind}]" + (f" {inbound.text}" if inbound.text else "")
        conversation_message_store(conversation=conversation, role=Message.Role.USER, text=content,
                                   at=inbound.sent_at, external_message_id=inbound.external_id)
        if conversation.status == Conversation.Status.HUMAN:
            return _finish(inbound, outcome="silent_human", conversation=conversation)
        notified = customer_notify(conversation=conversation,
                                   text=notice_text(locale=tenant.locale, kind="media"))
        return _finish(inbound, outcome="media_reply" if notified else "send_failed", conversation=conversation,
                       status=InboundMessage.Status.DONE if notified else InboundMessage.Status.FAILED)

    if conversation.status == Conversation.Status.HUMAN:
        # A person has this conversation: keep the message for them, say nothing.
        conversation_message_store(conversation=conversation, role=Message.Role.USER, text=inbound.text,
                                   at=inbound.sent_at, external_message_id=inbound.external_id)
        return _finish(inbound, outcome="silent_human", conversation=conversation)

    # Asking for a person, or a short yes to the bot's offer of one (one query, only for a short yes).
    said_yes = is_short_yes(inbound.text) and offered_person(last_assistant_reply(conversation))
    if said_yes or wants_human(inbound.text):
        conversation_message_store(conversation=conversation, role=Message.Role.USER, text=inbound.text,
                                   at=inbound.sent_at, external_message_id=inbound.external_id)
        event = conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                        reason=HandoffEvent.Reason.CUSTOMER_REQUEST, actor="customer")
        ok = event is None or event.customer_notified
        return _finish(inbound, outcome="handoff" if ok else "send_failed", conversation=conversation,
                       status=InboundMessage.Status.DONE if ok else InboundMessage.Status.FAILED)

    try:
        prepared = chat_prepare(tenant=tenant, user_id=inbound.user_id, channel=channel,
                                messages=[ChatTurn(role="user", content=inbound.text)],
                                name=inbound.name)
        result = chat_complete(prepared)
    except ApiError as exc:
        # The model failed; the customer's message is stored (chat_prepare did it). Say sorry.
        locale = reply_locale(tenant.locale or "id-ID", [inbound.text])
        customer_notify(conversation=conversation, text=notice_text(locale=locale, kind="unavailable"))
        return _finish(inbound, outcome=exc.code, status=InboundMessage.Status.FAILED, error=exc.message,
                       conversation=conversation)

    outcomes = channel_deliver(tenant=tenant, channel=channel, user_id=inbound.user_id, texts=result.bubbles)
    failed = next((o for o in outcomes if not o.ok), None)
    if failed is not None:
        return _finish(inbound, outcome="send_failed", status=InboundMessage.Status.FAILED, error=failed.detail,
                       conversation=conversation)
    if tenant.handoff_on_unanswered and model_cannot_help(result.reply):
        conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                reason=HandoffEvent.Reason.MODEL_CANNOT_HELP, actor="assistant")
        return _finish(inbound, outcome="model_handoff", conversation=conversation)
    return _finish(inbound, outcome="replied", conversation=conversation)


RETRY_WITHIN = timedelta(hours=24)  # an answer days late is worse than none


def inbound_recover(*, now: datetime | None = None, limit: int = 500) -> dict:
    """CROSS-TENANT. Rows stuck ``received`` (their task was lost) for
    ``CHANNELS_INBOUND_STALE_SECONDS``, or ``processing`` (their worker was killed: deploy,
    OOM) for that long and longer than django-q2's task timeout + 1 minute, counted from
    ``claimed_at`` (or ``received_at`` when never claimed): put back to ``received`` and
    queued again while ``attempts < CHANNELS_INBOUND_MAX_ATTEMPTS`` and the message arrived
    within 24 hours; otherwise ``failed`` with outcome ``abandoned``.

    Each change is a conditional update on the status and ``claimed_at`` that were read,
    and a re-queue sets ``claimed_at`` to now, so two recoverers, or a worker that finishes
    late, never make a row queued twice; a re-queued row is not looked at again until it
    is stale once more. Only ids, statuses and times are read across tenants; no customer
    content is touched here. Answers ``{"requeued", "abandoned", "skipped"}`` (skipped:
    changed by someone else between the read and the update).
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.CHANNELS_INBOUND_STALE_SECONDS)
    # django-q2 stops a task after its timeout: a row ``processing`` for longer has no live
    # worker, so a slow one (a model taking its time) is never answered twice.
    task_timeout = int((getattr(settings, "Q_CLUSTER", None) or {}).get("timeout") or 0)
    dead_before = min(stale_before, now - timedelta(seconds=task_timeout + 60))
    retry_since = now - RETRY_WITHIN
    max_attempts = settings.CHANNELS_INBOUND_MAX_ATTEMPTS
    Status = InboundMessage.Status
    counts = {"requeued": 0, "abandoned": 0, "skipped": 0}
    with scopes_disabled():
        stuck = list(
            InboundMessage.objects.filter(
                Q(status=Status.RECEIVED) & (Q(claimed_at__lt=stale_before)
                                             | Q(claimed_at__isnull=True, received_at__lt=stale_before))
                | Q(status=Status.PROCESSING) & (Q(claimed_at__lt=dead_before)
                                                 | Q(claimed_at__isnull=True, received_at__lt=dead_before)))
            .order_by("received_at", "id")
            .values("id", "channel", "status", "claimed_at", "attempts", "received_at")[:limit])
        for row in stuck:
            unchanged = InboundMessage.objects.filter(pk=row["id"], status=row["status"],
                                                      claimed_at=row["claimed_at"])
            if row["received_at"] < retry_since or row["attempts"] >= max_attempts:
                if row["received_at"] < retry_since:
                    why = f"not answered within {RETRY_WITHIN.total_seconds() / 3600:g} hours of arrival"
                else:
                    why = f"gave up after {row['attempts']} attempts (the worker stopped each time)"
                changed = unchanged.update(status=Status.FAILED, outcome="abandoned", processed_at=now,
                                           error=f"abandoned: {why}; it was stuck {row['status']}.")
                counts["abandoned" if changed else "skipped"] += 1
                continue
            if unchanged.update(status=Status.RECEIVED, claimed_at=now):
                inbound_enqueue(row["id"], channel=row["channel"])
                counts["requeued"] += 1
            else:
                counts["skipped"] += 1
    return counts
