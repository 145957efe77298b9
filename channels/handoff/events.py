"""The ``conversation.handoff`` event for the tenant's webhook: its payload, and the signed POST
(sent by the ``channels.tasks.handoff_event_deliver`` task after the status change commits)."""

from __future__ import annotations

import json
import time

from django.conf import settings

from channels.models import HandoffEvent
from followups.senders import webhook_post

HANDOFF_EVENT = "conversation.handoff"
EVENT_ATTEMPTS = 3


def handoff_event_payload(event: HandoffEvent) -> dict:
    conversation = event.conversation
    return {
        "event": HANDOFF_EVENT,
        "id": f"handoff_{event.pk}",
        "tenant_id": event.tenant_id,
        "conversation_id": conversation.pk,
        "channel": conversation.channel,
        "user_id": conversation.user_id,
        "contact_id": conversation.contact_id,
        "from_status": event.from_status,
        "status": event.to_status,
        "reason": event.reason,
        "actor": event.actor,
        "note": event.note,
        "at": event.created_at.isoformat(),
    }


def handoff_event_send(*, event: HandoffEvent) -> str:
    """POST the event to the tenant's webhook, signed like follow-ups are (see
    docs/followups.md: ``X-Layan-Signature`` over ``"<timestamp>." + body``),
    with ``Idempotency-Key: handoff_<id>``. 2xx sent; 4xx failed at once; 5xx, 408,
    429 and network errors are tried up to three times. Answers the stored status."""
    tenant = event.tenant
    if not tenant.webhook_url or not tenant.webhook_secret:
        HandoffEvent.objects.filter(pk=event.pk).update(webhook_status="skipped",
                                                        webhook_detail="the tenant has no webhook_url/secret")
        return "skipped"
    body = json.dumps(handoff_event_payload(event), ensure_ascii=False).encode()
    status, detail = "failed", ""
    for attempt in range(EVENT_ATTEMPTS):
        result = webhook_post(tenant=tenant, event=HANDOFF_EVENT, idempotency_key=f"handoff_{event.pk}", body=body,
                              timeout=settings.CHANNEL_HTTP_TIMEOUT_SECONDS)
        detail = result.detail
        if result.outcome == "sent":
            status = "sent"
            break
        if result.outcome == "permanent":
            break
        if attempt < EVENT_ATTEMPTS - 1:
            time.sleep(2 ** attempt)
    HandoffEvent.objects.filter(pk=event.pk).update(webhook_status=status, webhook_detail=detail[:500])
    return status
