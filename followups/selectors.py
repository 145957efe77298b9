from __future__ import annotations

from datetime import datetime

from followups.models import FollowUp


def followup_list(*, status: str | None = None, contact_id: int | None = None,
                  scheduled_from: datetime | None = None, scheduled_to: datetime | None = None):
    """The current tenant's follow-ups (the caller's tenant scope filters them), newest schedule first;
    the pending queue reads soonest first instead."""
    qs = FollowUp.objects.select_related("contact")
    if status:
        qs = qs.filter(status=status)
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    if scheduled_from is not None:
        qs = qs.filter(scheduled_at__gte=scheduled_from)
    if scheduled_to is not None:
        qs = qs.filter(scheduled_at__lt=scheduled_to)
    if status == FollowUp.Status.PENDING:
        return qs.order_by("next_attempt_at", "id")
    return qs.order_by("-scheduled_at", "-id")
