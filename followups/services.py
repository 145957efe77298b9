"""Scheduling, cancelling and retrying follow-ups (the API's and the admin's actions).
Sending lives in ``followups.dispatch``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_project.errors import ApiError
from contacts.models import Contact, ContactIdentity
from contacts.services import contact_for_channel, contact_hold
from conversations.models import Conversation
from followups import policy
from followups.models import FollowUp
from tenants import hours
from tenants.models import Tenant
from tenants.scoping import tenant_scope

MAX_SCHEDULE_AHEAD = timedelta(days=366)
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DEFAULT_CHANNEL = "webhook"


def followup_first_attempt_at(*, tenant: Tenant, due: datetime, respect_working_hours: bool) -> datetime:
    """When the dispatcher may first take a follow-up due at ``due``."""
    if not respect_working_hours:
        return due
    at = hours.next_opening_at_or_after(working_hours=tenant.working_hours, holidays=tenant.holidays,
                                        timezone=tenant.timezone, at=due)
    if at is None:
        raise ApiError(422, "never_open", "respect_working_hours was asked but the tenant's working hours "
                                          "never open in the coming year.")
    return at


def _due_time(*, tenant: Tenant, scheduled_at: datetime | None, delay_minutes: int | None, now: datetime):
    if scheduled_at is not None and delay_minutes is not None:
        raise ApiError(400, "schedule_ambiguous", "Give scheduled_at or delay_minutes, not both.")
    if delay_minutes is not None:
        if delay_minutes < 0:
            raise ApiError(400, "invalid_delay", "delay_minutes cannot be negative.")
        due = now + timedelta(minutes=delay_minutes)
    elif scheduled_at is not None:
        due = scheduled_at
        if timezone.is_naive(due):  # a wall-clock time means the tenant's own clock
            due = due.replace(tzinfo=hours.get_zone(tenant.timezone))
    else:
        due = now  # neither: as soon as possible
    if due - now > MAX_SCHEDULE_AHEAD:
        raise ApiError(400, "schedule_too_far", "A follow-up can be scheduled at most 366 days ahead.")
    return due


def _recipient(*, tenant: Tenant, contact_id, user_id: str, channel: str, conversation: Conversation | None):
    """(contact, channel, user_id) from whichever of contact_id / user_id+channel / conversation was given."""
    if contact_id is not None and user_id:
        raise ApiError(400, "recipient_ambiguous", "Give contact_id or user_id + channel, not both.")
    if contact_id is not None:
        contact = Contact.objects.filter(pk=contact_id).first()
        if contact is None:
            raise ApiError(404, "contact_not_found", "No contact with that id.")
        identities = ContactIdentity.objects.filter(contact=contact).order_by("id")
        identity = identities.filter(channel=channel).first() if channel else identities.first()
        if not channel:
            channel = identity.channel if identity else (conversation.channel if conversation else DEFAULT_CHANNEL)
        return contact, channel, identity.external_id if identity else ""
    if user_id:
        if not channel:
            raise ApiError(400, "channel_required", "user_id needs the channel it belongs to (e.g. whatsapp).")
        identity = (ContactIdentity.objects.select_related("contact")
                    .filter(channel=channel, external_id=user_id).first())
        if identity is not None:
            return identity.contact, channel, user_id
        return contact_for_channel(tenant=tenant, channel=channel, external_id=user_id), channel, user_id
    if conversation is not None:
        contact = conversation.contact or contact_for_channel(
            tenant=tenant, channel=conversation.channel, external_id=conversation.user_id)
        return contact, conversation.channel, conversation.user_id
    raise ApiError(400, "recipient_required", "Say who gets the follow-up: contact_id, or user_id + channel.")


def followup_schedule(*, tenant: Tenant, contact_id: int | None = None, user_id: str = "", channel: str = "",
                      conversation_id: int | None = None, message: str = "", variables: dict | None = None,
                      scheduled_at: datetime | None = None, delay_minutes: int | None = None,
                      respect_working_hours: bool = False, idempotency_key: str = "", created_by: str = "",
                      now: datetime | None = None) -> tuple[FollowUp, bool]:
    """Schedule one follow-up; answers ``(followup, created)``.

    The recipient is ``contact_id`` or ``user_id`` + ``channel`` (a channel user not seen
    before becomes a contact) or, failing both, the conversation's user. A time in the
    past means as soon as possible; a naive ``scheduled_at`` is read in the tenant's time
    zone. An empty ``message`` is written by the tenant's AI at send time; otherwise it may
    use ``{placeholders}``, checked now. A repeated ``idempotency_key`` returns the
    follow-up made the first time instead of a second one. Nothing is stored when any
    check fails (the whole call is one transaction).
    """
    now = now or timezone.now()
    variables = variables or {}
    channel = (channel or "").strip().lower()
    user_id = (user_id or "").strip()
    with tenant_scope(tenant), transaction.atomic():
        if idempotency_key:
            if not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                raise ApiError(400, "invalid_idempotency_key",
                               "idempotency_key is 1-64 letters, digits or . _ : -")
            existing = FollowUp.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing, False
        try:
            policy.template_check(message or "", variables)
        except policy.TemplateError as exc:
            raise ApiError(400, exc.code, exc.message, exc.details) from None
        due = _due_time(tenant=tenant, scheduled_at=scheduled_at, delay_minutes=delay_minutes, now=now)
        first_attempt = followup_first_attempt_at(tenant=tenant, due=max(due, now),
                                                  respect_working_hours=respect_working_hours)
        conversation = None
        if conversation_id is not None:
            conversation = Conversation.objects.filter(pk=conversation_id).first()
            if conversation is None:
                raise ApiError(404, "conversation_not_found", "No conversation with that id.")
        requested_channel = channel
        contact, channel, user_id = _recipient(tenant=tenant, contact_id=contact_id, user_id=user_id,
                                               channel=channel, conversation=conversation)
        if contact.opted_out:
            raise ApiError(409, "contact_opted_out", "This contact has opted out of follow-ups.",
                           details={"contact_id": contact.pk})
        if conversation is not None:
            if conversation.contact_id is not None:
                own = conversation.contact_id == contact.pk
            else:  # not bound to a contact: its user must be one of the recipient's identities
                own = ContactIdentity.objects.filter(contact=contact, channel=conversation.channel,
                                                     external_id=conversation.user_id).exists()
            if not own:  # the AI would write to this customer from another one's conversation
                raise ApiError(409, "conversation_mismatch",
                               "The conversation is another customer's, not the recipient's.",
                               details={"conversation_id": conversation.pk, "contact_id": contact.pk})
            if contact_id is not None and not requested_channel and ContactIdentity.objects.filter(
                    contact=contact, channel=conversation.channel, external_id=conversation.user_id).exists():
                # the customer's own conversation names where to reach them (a contact with several identities),
                # while that id is still theirs (an identity moved to another contact is not)
                channel, user_id = conversation.channel, conversation.user_id
        contact_hold(contact)  # not erased before this commits (its foreign key would fail there)
        if conversation is None and user_id:
            # The AI writes from the conversation so far: find it when the client did not name it.
            conversation = Conversation.objects.filter(channel=channel, user_id=user_id).first()
        followup = FollowUp(
            tenant=tenant, contact=contact, conversation=conversation, channel=channel, user_id=user_id,
            message=message or "", variables=variables, scheduled_at=due, next_attempt_at=first_attempt,
            respect_working_hours=respect_working_hours, created_by=created_by[:120],
        )
        if idempotency_key:
            followup.idempotency_key = idempotency_key
        try:
            with transaction.atomic():
                followup.save()
        except IntegrityError:  # the same key, sent twice at the same moment: the first one wins
            existing = FollowUp.objects.filter(idempotency_key=followup.idempotency_key).first()
            if existing is None:
                raise
            return existing, False
        return followup, True


def followup_cancel(*, followup: FollowUp, now: datetime | None = None) -> FollowUp:
    """Only a pending follow-up can be cancelled; cancelling twice is harmless. The
    update is conditional, so a dispatcher that took the row a moment ago wins."""
    now = now or timezone.now()
    with tenant_scope(followup.tenant):
        changed = FollowUp.objects.filter(pk=followup.pk, status=FollowUp.Status.PENDING).update(
            status=FollowUp.Status.CANCELLED, cancelled_at=now, updated_at=now)
        followup.refresh_from_db()
    if not changed and followup.status != FollowUp.Status.CANCELLED:
        raise _not_now(followup, "cancelled", "followup_not_cancellable")
    return followup


def followup_retry(*, followup: FollowUp, now: datetime | None = None) -> FollowUp:
    """Put a failed or cancelled follow-up back in the queue with a fresh attempt count,
    or send a pending one now instead of waiting for its time (or its backoff).
    The idempotency key stays: a receiver that did get it before can still drop it."""
    now = now or timezone.now()
    with tenant_scope(followup.tenant):
        first_attempt = followup_first_attempt_at(tenant=followup.tenant, due=now,
                                                  respect_working_hours=followup.respect_working_hours)
        reopen = {"status": FollowUp.Status.PENDING, "next_attempt_at": first_attempt, "updated_at": now}
        changed = FollowUp.objects.filter(
            pk=followup.pk, status__in=[FollowUp.Status.FAILED, FollowUp.Status.CANCELLED],
        ).update(**reopen, attempts=0, last_error="", cancelled_at=None, lease_expires_at=None)
        if not changed:
            changed = FollowUp.objects.filter(pk=followup.pk, status=FollowUp.Status.PENDING).update(**reopen)
        followup.refresh_from_db()
    if not changed:
        raise _not_now(followup, "retried", "followup_not_retryable")
    return followup


def _not_now(followup: FollowUp, verb: str, code: str) -> ApiError:
    if followup.status == FollowUp.Status.SENT:
        return ApiError(409, "followup_already_sent", f"This follow-up was already sent; it cannot be {verb}.")
    if followup.status == FollowUp.Status.SENDING:
        return ApiError(409, "followup_in_flight", f"This follow-up is being sent right now; it cannot be {verb}.")
    return ApiError(409, code, f"A {followup.status} follow-up cannot be {verb}.")

