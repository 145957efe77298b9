"""The contacts' side of a conversation, for the chat pipeline, the channels and the follow-ups:
the contact a channel user is (``contact_for_channel``), one line of its history
(``contact_log_record``), and the hold that keeps it from being erased until the caller's
transaction ends (``contact_hold``)."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from agent_project.errors import ApiError
from contacts.models import Contact, ContactIdentity, ContactLog
from contacts.normalize import InvalidValue, phone_normalize
from contacts.services.common import RETRIES, WHATSAPP, tenant_phone_region
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def contact_for_channel(*, tenant: Tenant, channel: str, external_id: str, name: str = "",
                        phone: str | None = None, at: datetime | None = None) -> Contact:
    """The contact a channel user is, created on first sight; marks it seen now.

    Found by ``ContactIdentity(channel, external_id)``; a new identity attaches to the
    contact that already has ``phone`` (a WhatsApp user who was imported from a CSV),
    otherwise a new contact is made. A phone that does not parse is ignored rather than
    refused: a chat turn must not fail because a channel sent an odd number.
    Safe under concurrency: many simultaneous first messages make one contact.
    """
    channel = str(channel).strip().lower()
    external_id = str(external_id).strip()
    if not channel or not external_id:
        raise ValueError("contact_for_channel needs a channel and an external_id")
    now = at or timezone.now()
    if phone is None and channel == WHATSAPP and external_id.isdigit():
        # A WhatsApp id is the number: the customer imported or created by phone is this one (whatever
        # the caller: a webhook, /chat, a follow-up scheduled to the id), not a second contact.
        phone = "+" + external_id
    try:
        phone = phone_normalize(phone, tenant_phone_region(tenant)) if phone else None
    except InvalidValue:
        phone = None
    with tenant_scope(tenant):
        for _ in range(RETRIES):
            identity = (ContactIdentity.objects.select_related("contact")
                        .filter(channel=channel, external_id=external_id).first())
            if identity is not None:
                contact = identity.contact
                _touch(contact, now=now, name=name)
                return contact
            try:
                with transaction.atomic():
                    contact = Contact.objects.filter(phone=phone).first() if phone else None
                    if contact is None:
                        contact = Contact.objects.create(tenant=tenant, name=name[:200], phone=phone,
                                                         first_seen_at=now, last_seen_at=now)
                    else:
                        _touch(contact, now=now, name=name)
                    ContactIdentity.objects.create(tenant=tenant, contact=contact, channel=channel,
                                                   external_id=external_id)
                    return contact
            except IntegrityError:
                continue  # another request created the identity or the phone first: read it next time
        raise RuntimeError(f"contact_for_channel: no stable contact for {channel}:{external_id}")


def _touch(contact: Contact, *, now: datetime, name: str = "") -> None:
    """last_seen_at only moves forward, first_seen_at only back, a blank name is filled.
    Each is a conditional update, so a late (older) message or a concurrent writer never
    moves a date the wrong way or overwrites a name someone has set meanwhile."""
    Q = models.Q
    if contact.last_seen_at is None or contact.last_seen_at < now:
        Contact.objects.filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now), pk=contact.pk).update(
            last_seen_at=now, updated_at=timezone.now())
        contact.last_seen_at = now
    if contact.first_seen_at is None or contact.first_seen_at > now:
        Contact.objects.filter(Q(first_seen_at__isnull=True) | Q(first_seen_at__gt=now), pk=contact.pk).update(
            first_seen_at=now)
        contact.first_seen_at = now
    if name and not contact.name:
        Contact.objects.filter(pk=contact.pk, name="").update(name=name[:200])
        contact.name = name[:200]


def contact_hold(contact: Contact) -> None:
    """Keep the contact from being erased until the current transaction ends (the lock a foreign
    key check takes, ``FOR KEY SHARE``: its own updates still run), or answer 404
    ``contact_not_found`` if it is gone already. A row about to point at it then cannot fail its
    deferred foreign key at COMMIT, a 500 after the request's work was done."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT 1 FROM {Contact._meta.db_table} WHERE id = %s FOR KEY SHARE", [contact.pk])
        if cur.fetchone() is None:
            raise ApiError(404, "contact_not_found", "No contact with that id (it was just erased).")


def contact_log_record(*, tenant: Tenant, contact: Contact, role: str, content: str, channel: str,
                       at: datetime | None = None, external_message_id: str | None = None,
                       conversation_id: int | None = None) -> ContactLog:
    """Append one message to the contact's history; idempotent on ``external_message_id``.

    A repeat of an id already stored returns the stored row unchanged (its
    ``was_created`` is False), so a channel redelivering a webhook is harmless.
    """
    if role not in ContactLog.ROLES:
        raise ApiError(422, "invalid_role", f"role must be one of {', '.join(ContactLog.ROLES)}.",
                       details={"role": role})
    if contact.tenant_id != tenant.pk:
        raise ValueError("contact belongs to another tenant")
    external_message_id = (str(external_message_id).strip() or None) if external_message_id is not None else None
    at = at or timezone.now()
    with tenant_scope(tenant):
        for _ in range(RETRIES):
            if external_message_id:
                existing = ContactLog.objects.filter(external_message_id=external_message_id).first()
                if existing is not None:
                    existing.was_created = False
                    return existing
            fields = dict(tenant=tenant, contact=contact, role=role, content=content, channel=str(channel)[:32],
                          at=at, external_message_id=external_message_id, conversation_id=conversation_id)
            try:
                with transaction.atomic():
                    contact_hold(contact)
                    log = ContactLog.objects.create(**fields)
            except IntegrityError:
                if external_message_id is None:
                    raise
                continue  # the same message id arrived concurrently: return the stored one
            if role == "user":
                _touch(contact, now=at)
            log.was_created = True
            return log
        raise RuntimeError(f"contact_log_record: could not store message {external_message_id}")
