"""django-q2 tasks of the channels app: each loads its row by id, opens that row's
tenant scope and calls a service. Enqueued after commit by the webhook views and by
``channels.handoff.status.conversation_status_set``.

CROSS-TENANT JOB. ``inbound_recover`` is the exception: it is about every tenant's
stuck inbound messages (see ``channels.inbound.inbound_recover``, which reads and
updates only ids, statuses and times across tenants; the re-queued
``inbound_process`` opens the row's own tenant scope). It takes no tenant argument
on purpose; do not copy it as a pattern for tenant work. It runs every minute from
the schedule ``channels-inbound-recover`` (agent_project/schedules.py).
"""

from __future__ import annotations

import logging

from django_scopes import scopes_disabled

from channels.handoff.events import handoff_event_send
from channels.inbound import inbound_handle
from channels.inbound import inbound_recover as _inbound_recover
from channels.models import HandoffEvent, InboundMessage
from tenants.scoping import tenant_scope

logger = logging.getLogger(__name__)


def inbound_process(inbound_id: int) -> str:
    with scopes_disabled():  # the id is all the task gets; the row tells its tenant
        inbound = InboundMessage.objects.select_related("tenant").filter(pk=inbound_id).first()
    if inbound is None:
        return "missing"
    with tenant_scope(inbound.tenant):
        return inbound_handle(inbound=inbound)


def inbound_recover() -> dict:
    """CROSS-TENANT. The scheduled tick: re-queue or abandon stuck inbound messages."""
    counts = _inbound_recover()
    if counts["requeued"] or counts["abandoned"]:
        logger.warning("channels: recovered stuck inbound messages: %s", counts)
    else:
        logger.debug("channels: no stuck inbound messages: %s", counts)
    return counts


def handoff_event_deliver(event_id: int) -> str:
    with scopes_disabled():
        event = HandoffEvent.objects.select_related("tenant", "conversation").filter(pk=event_id).first()
    if event is None:
        return "missing"
    with tenant_scope(event.tenant):
        return handoff_event_send(event=event)
