"""Sending due follow-ups exactly once, across every tenant.

CROSS-TENANT: the dispatcher's reads of the queue (claim, load the claimed batch, next
due time, due count) are the only queries over every tenant's follow-ups at once
(``scopes_disabled``); everything done *to* a claimed row runs inside that row's own
``tenant_scope``.

Exactly once, as far as we can make it: a batch is claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` and marked ``sending`` with a lease in the same
transaction, so two workers never hold the same row. Outcomes are written with a
conditional update on the claim (status ``sending`` and the attempt number), so a
worker that outlived its lease cannot overwrite the row another worker re-took. A
worker that dies mid-send leaves the row ``sending``; after the lease it is claimed
again and re-sent with the same idempotency key, which lets the receiver drop the
repeat — the one duplicate no sender can rule out.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone
from django_scopes import scopes_disabled

from agent_project import metrics
from followups import policy
from followups.models import FollowUp
from followups.senders import SendResult, sender_for
from followups.writer import TextUnavailable, followup_write_with_ai
from tenants import hours
from tenants.scoping import tenant_scope

logger = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    lost: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("claimed", "sent", "retried", "failed", "deferred", "lost")}


def followups_claim(*, batch_size: int, worker: str, now: datetime | None = None) -> list[int]:
    """CROSS-TENANT. Take up to ``batch_size`` due rows (rows whose lease ran out first,
    then pending rows, soonest first), skipping rows other workers hold, and lease them."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.FOLLOWUP_LEASE_SECONDS)
    with scopes_disabled(), transaction.atomic():
        # Two queries, each served by its own partial index, rather than one OR.
        ids = list(FollowUp.objects.filter(status=FollowUp.Status.SENDING, lease_expires_at__lte=now)
                   .order_by("lease_expires_at").select_for_update(skip_locked=True)
                   .values_list("id", flat=True)[:batch_size])
        if len(ids) < batch_size:
            ids += list(FollowUp.objects.filter(status=FollowUp.Status.PENDING, next_attempt_at__lte=now)
                        .order_by("next_attempt_at", "id").select_for_update(skip_locked=True)
                        .values_list("id", flat=True)[:batch_size - len(ids)])
        if ids:
            FollowUp.objects.filter(id__in=ids).update(
                status=FollowUp.Status.SENDING, lease_expires_at=lease_until, attempts=F("attempts") + 1,
                claimed_by=worker[:120], updated_at=now,
            )
    return ids


def followups_next_due() -> datetime | None:
    """CROSS-TENANT. When the next row becomes claimable (pending, or a lease running out)."""
    with scopes_disabled():
        pending = FollowUp.objects.filter(status=FollowUp.Status.PENDING).aggregate(t=Min("next_attempt_at"))["t"]
        leased = FollowUp.objects.filter(status=FollowUp.Status.SENDING).aggregate(t=Min("lease_expires_at"))["t"]
    times = [t for t in (pending, leased) if t is not None]
    return min(times) if times else None


def followups_due_count(*, now: datetime | None = None, limit: int = 10_000) -> int:
    now = now or timezone.now()
    with scopes_disabled():
        return (FollowUp.objects.filter(status=FollowUp.Status.PENDING, next_attempt_at__lte=now)
                .values("id")[:limit].count())


@dataclass
class _Plan:
    """What to do with one claimed row; decided without writing anything."""

    row: FollowUp
    result: SendResult | None = None  # known without sending (permanent refusal, text failure)
    defer_until: datetime | None = None
    new_text: tuple[str, str] | None = None  # (text, origin) to fix before sending
    lost: bool = False


def followups_deliver(*, ids: list[int], worker: str, stats: DispatchStats | None = None) -> DispatchStats:
    """Send the claimed rows of a batch (each in its tenant's scope) and record what happened.

    Writes are grouped: one transaction fixes the texts of the batch before anything is
    sent, one records every outcome after. A commit waits for the disk, so committing per
    row would cap a worker at a few dozen sends per second; the price is that a worker
    dying mid-batch has its whole batch re-sent after the lease, under the same keys.
    """
    stats = stats or DispatchStats()
    with scopes_disabled():
        rows = list(FollowUp.objects.filter(id__in=ids, status=FollowUp.Status.SENDING, claimed_by=worker[:120])
                    .select_related("tenant", "contact", "conversation").order_by("next_attempt_at", "id"))
    stats.lost += len(ids) - len(rows)
    for outcome in _deliver(rows):
        stats.add(outcome)
        metrics.followup_outcome_observe(outcome=outcome)
    return stats


def followup_deliver(*, followup: FollowUp) -> str:
    """One claimed row: "sent", "retried", "failed", "deferred" or "lost"."""
    return _deliver([followup])[0]


def _deliver(rows: list[FollowUp]) -> list[str]:
    plans = []
    for row in rows:
        with tenant_scope(row.tenant):
            try:
                plans.append(_plan(row, timezone.now()))
            except Exception as exc:  # one bad row must not stop the batch; it is retried like a 5xx
                logger.exception("follow-up %s could not be prepared", row.pk)
                plans.append(_Plan(row, result=SendResult("retry", f"internal_error: {type(exc).__name__}: {exc}")))
    # Fixed before sending, so every retry repeats the same words under the same key.
    if any(p.new_text for p in plans):
        with transaction.atomic():
            for p in plans:
                if p.new_text:
                    with tenant_scope(p.row.tenant):
                        text, origin = p.new_text
                        p.lost = not _claimed(p.row).update(text_sent=text, text_origin=origin[:120])
    for p in plans:
        if p.lost or p.result or p.defer_until:
            continue
        with tenant_scope(p.row.tenant):
            try:
                p.result = sender_for(p.row.channel).send(followup=p.row, text=p.row.text_sent)
            except Exception as exc:
                logger.exception("follow-up %s crashed while sending", p.row.pk)
                p.result = SendResult("retry", f"internal_error: {type(exc).__name__}: {exc}")
    outcomes = []
    now = timezone.now()
    with transaction.atomic():
        for p in plans:
            with tenant_scope(p.row.tenant):
                if p.lost:
                    outcomes.append("lost")
                elif p.defer_until:
                    outcomes.append(_defer(p.row, until=p.defer_until, now=now))
                else:
                    outcomes.append(_record(p.row, p.result, now))
    return outcomes


def _plan(followup: FollowUp, now: datetime) -> _Plan:
    tenant = followup.tenant
    if followup.attempts > settings.FOLLOWUP_MAX_ATTEMPTS:
        # Only reachable through lease expiry: its workers keep dying on this row.
        return _Plan(followup, result=SendResult("permanent", f"gave up after {followup.attempts - 1} attempts: "
                                                 f"{followup.last_error or 'the worker stopped mid-send'}"))
    if followup.contact.opted_out:
        return _Plan(followup, result=SendResult("permanent",
                                                 "contact_opted_out: the contact opted out after scheduling"))
    if followup.respect_working_hours:
        opens = hours.next_opening_at_or_after(working_hours=tenant.working_hours, holidays=tenant.holidays,
                                               timezone=tenant.timezone, at=now)
        if opens is None:
            return _Plan(followup, result=SendResult("permanent",
                                                     "never_open: the tenant's working hours never open"))
        if opens > now:
            return _Plan(followup, defer_until=opens)
    if followup.text_sent:
        return _Plan(followup)
    try:
        text, origin = followup_text(followup=followup)
    except TextUnavailable as exc:
        return _Plan(followup, result=SendResult("permanent" if exc.permanent else "retry", str(exc)))
    except Exception as exc:  # the model timed out or is down: like a 5xx, try again later
        logger.warning("follow-up %s: writing the text failed: %s", followup.pk, exc)
        return _Plan(followup, result=SendResult("retry", f"text_failed: {type(exc).__name__}: {exc}"))
    followup.text_sent, followup.text_origin = text, origin
    return _Plan(followup, new_text=(text, origin))


def followup_text(*, followup: FollowUp) -> tuple[str, str]:
    """The text to send and where it came from: the operator's message (a template filled
    from the contact and the variables), or, for an empty message, the tenant's AI."""
    if followup.message:
        contact, tenant = followup.contact, followup.tenant
        builtins = policy.builtin_values(contact_name=contact.name, phone=contact.phone, email=contact.email,
                                         tenant_name=tenant.name)
        text = policy.template_render(followup.message, builtins=builtins, variables=followup.variables)
        return text, "template" if policy.template_fields(followup.message) else "message"
    return followup_write_with_ai(followup=followup)


def _claimed(followup: FollowUp):
    # The claim is identified by (status sending, attempt number): a re-claim bumps attempts.
    return FollowUp.objects.filter(pk=followup.pk, status=FollowUp.Status.SENDING, attempts=followup.attempts)


def _defer(followup: FollowUp, *, until: datetime, now: datetime) -> str:
    # Waiting for opening hours is not a failed attempt: give the attempt back.
    changed = _claimed(followup).update(status=FollowUp.Status.PENDING, next_attempt_at=until,
                                        attempts=F("attempts") - 1, lease_expires_at=None, updated_at=now)
    return "deferred" if changed else "lost"


def _record(followup: FollowUp, result: SendResult, now: datetime | None = None) -> str:
    now = now or timezone.now()
    claim = _claimed(followup)
    if result.outcome == "sent":
        changed = claim.update(status=FollowUp.Status.SENT, sent_at=now, lease_expires_at=None, last_error="",
                               updated_at=now)
        return "sent" if changed else "lost"
    if result.outcome == "retry" and followup.attempts < settings.FOLLOWUP_MAX_ATTEMPTS:
        delay = policy.retry_delay(attempt=followup.attempts, base=settings.FOLLOWUP_RETRY_BASE_SECONDS,
                                   cap=settings.FOLLOWUP_RETRY_MAX_SECONDS, rand=random.random())
        delay = max(delay, result.retry_after or 0)
        changed = claim.update(status=FollowUp.Status.PENDING, next_attempt_at=now + timedelta(seconds=delay),
                               lease_expires_at=None, last_error=result.detail[:2000], updated_at=now)
        return "retried" if changed else "lost"
    reason = result.detail
    if result.outcome == "retry":
        reason = f"gave up after {followup.attempts} attempts: {reason}"
    changed = claim.update(status=FollowUp.Status.FAILED, lease_expires_at=None, last_error=reason[:2000],
                           updated_at=now)
    return "failed" if changed else "lost"


def followups_dispatch(*, window_seconds: float, watch: bool, worker: str | None = None,
                       batch_size: int | None = None) -> DispatchStats:
    """CROSS-TENANT. Claim and send batches until nothing is due or the window closes.

    With ``watch`` the worker also stays for rows that come due before the window
    closes (polling each second), so a follow-up due between two scheduler ticks goes
    out within about a second rather than at the next tick; with nothing due in the
    window it returns at once and holds no worker.
    """
    worker = worker or worker_name()
    batch_size = batch_size or settings.FOLLOWUP_BATCH_SIZE
    deadline = time.monotonic() + window_seconds
    stats = DispatchStats()
    while True:
        ids = followups_claim(batch_size=batch_size, worker=worker)
        if ids:
            stats.claimed += len(ids)
            followups_deliver(ids=ids, worker=worker, stats=stats)
            if time.monotonic() < deadline:
                continue
            break
        if not watch or time.monotonic() >= deadline:
            break
        upcoming = followups_next_due()
        now = timezone.now()
        left = deadline - time.monotonic()
        if upcoming is None or (upcoming - now).total_seconds() > left:
            break
        time.sleep(min(IDLE_POLL_SECONDS, max(left, 0)))
    return stats
