"""django-q2 tasks of the channels app: each loads its row by id, opens that row's
tenant scope and calls a service. Enqueued after commit by the webhook views and by
``handoff.conversation_status_set``."""

from __future__ import annotations

from django_scopes import scopes_disabled

from channels.handoff import handoff_event_send
from channels.inbound import inbound_handle
from channels.models import HandoffEvent, InboundMessage
from tenants.scoping import tenant_scope


def inbound_process(inbound_id: int) -> str:
    with scopes_disabled():  # the id is all the task gets; the row tells its tenant
        inbound = InboundMessage.objects.select_related("tenant").filter(pk=inbound_id).first()
    if inbound is None:
        return "missing"
    with tenant_scope(inbound.tenant):
        return inbound_handle(inbound=inbound)


def handoff_event_deliver(event_id: int) -> str:
    with scopes_disabled():
        event = HandoffEvent.objects.select_related("tenant", "conversation").filter(pk=event_id).first()
    if event is None:
        return "missing"
    with tenant_scope(event.tenant):
        return handoff_event_send(event=event)
