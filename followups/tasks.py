"""django-q2 tasks of the follow-up dispatcher.

CROSS-TENANT JOBS. Unlike every other task, these are not about one tenant: they
claim due follow-ups of all tenants (see ``followups.dispatch``, which opens each
row's own tenant scope while it is being sent). They take no tenant argument on
purpose; do not copy them as a pattern for tenant work.

``dispatch_due`` runs every minute from the schedule ``followups-dispatch``
(agent_project/schedules.py). When more is due than one worker would send quickly it
fans out up to ``FOLLOWUP_DISPATCH_PARALLELISM - 1`` helper ``dispatch_drain`` tasks;
SKIP LOCKED lets them share the queue without coordination.
"""

from __future__ import annotations

import math

from django.conf import settings
from django_q.tasks import async_task

from followups.dispatch import followups_dispatch, followups_due_count


def dispatch_due() -> dict:
    """CROSS-TENANT. The scheduled tick: fan out for a backlog, then drain and keep
    watching for rows due before the next tick."""
    batch = settings.FOLLOWUP_BATCH_SIZE
    due = followups_due_count(limit=batch * max(settings.FOLLOWUP_DISPATCH_PARALLELISM, 1))
    helpers = min(settings.FOLLOWUP_DISPATCH_PARALLELISM - 1, math.ceil(due / batch) - 1)
    for _ in range(max(helpers, 0)):
        async_task("followups.tasks.dispatch_drain", group="followups-dispatch")
    stats = followups_dispatch(window_seconds=settings.FOLLOWUP_DISPATCH_WINDOW_SECONDS, watch=True)
    return {"helpers": max(helpers, 0), **stats.as_dict()}


def dispatch_drain() -> dict:
    """CROSS-TENANT. A helper: send what is due now, then stop."""
    stats = followups_dispatch(window_seconds=settings.FOLLOWUP_DISPATCH_WINDOW_SECONDS, watch=False)
    return stats.as_dict()
