"""Writes to contacts and their history. Every service opens its tenant's scope itself,
so views, tasks and other apps (the chat endpoint, the follow-up dispatcher) call them
the same way.

Duplicates are made impossible by the database (unique phone / e-mail / channel identity
per tenant), not by a read-then-write check: a losing concurrent writer gets an
IntegrityError inside a savepoint, and the service retries, now finding the winner's row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, connection, models, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from agent_project.errors import ApiError
from contacts.models import Contact, ContactDeletion, ContactIdentity, ContactLog, ContactMerge
from contacts.normalize import InvalidValue, email_normalize, phone_normalize, region_for_locale
from tenants.models import Tenant
from tenants.scoping import tenant_scope

WHATSAPP = "whatsapp"  # channels.base.WHATSAPP: its user ids are phone numbers

# Rows that are the contact's personal data although their foreign key only detaches them
# (SET_NULL) when a contact is removed for other reasons: a conversation is the chat
# history with that person, so erasing the person erases it (and its messages) too.
ERASED_WITH_CONTACT = ("conversations.Conversation",)

RETRIES = 5  # a conflict can only be lost to a row that then exists, so a few tries always suffice


def tenant_phone_region(tenant: Tenant) -> str:
    return region_for_locale(tenant.locale)


def _clean_phone(tenant: Tenant, raw) -> str | None:
    try:
        return phone_normalize(raw, tenant_phone_region(tenant))
    except InvalidValue as exc:
        raise ApiError(422, exc.code, exc.message, details={"field": "phone", "value": str(raw)}) from None


def _clean_email(raw) -> str | None:
    try:
        return email_normalize(raw)
    except InvalidValue as exc:
        raise ApiError(422, exc.code, exc.message, details={"field": "email", "value": str(raw)}) from None


def _clean_identities(external_ids) -> list[tuple[str, str]]:
    """``{"whatsapp": "628…"}`` or ``[{"channel": …, "external_id": …}]`` → [(channel, id)]."""
    if not external_ids:
        return []
    if isinstance(external_ids, Mapping):
        pairs = list(external_ids.items())
    else:
        pairs = [(item.get("channel"), item.get("external_id")) for item in external_ids]
    cleaned = []
    for channel, external_id in pairs:
        channel = str(channel or "").strip().lower()
        external_id = str(external_id if external_id is not None else "").strip()
        if not channel or not external_id or len(channel) > 32 or len(external_id) > 200:
            raise ApiError(422, "invalid_external_id",
                           "Each external id needs a channel (at most 32 characters) and an id (at most 200).",
                           details={"channel": channel, "external_id": external_id})
        if (channel, external_id) not in cleaned:
            cleaned.append((channel, external_id))
    return cleaned


# --- chat-facing contracts ------------------------------------------------------

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


# --- the contacts API -----------------------------------------------------------

@dataclass
class UpsertResult:
    contact: Contact
    created: bool
    matched_by: list[str] = field(default_factory=list)


_PLAIN_FIELDS = ("name", "opted_out")


def contact_upsert(*, tenant: Tenant, data: Mapping) -> UpsertResult:
    """Create a contact, or update the one that has this phone, e-mail or external id.

    Matching more than one contact (phone → A, e-mail → B) is a 409 naming both, never
    a guess. On update: given fields replace, tags are added to the existing ones and
    attributes are merged key by key (what one source knows is kept when another
    writes). Validation happens before anything is written.
    """
    phone = _clean_phone(tenant, data.get("phone")) if "phone" in data else None
    email = _clean_email(data.get("email")) if "email" in data else None
    identities = _clean_identities(data.get("external_ids"))
    if not (phone or email or identities):
        raise ApiError(422, "contact_key_required",
                       "A contact needs at least a phone, an e-mail or an external id to be matched by.")
    now = timezone.now()
    with tenant_scope(tenant):
        for _ in range(RETRIES):
            try:
                with transaction.atomic():
                    return _upsert_once(tenant, data, phone=phone, email=email, identities=identities, now=now)
            except (IntegrityError, _Rematch):
                continue  # a concurrent request created (or erased) the matching row: match again
        raise ApiError(409, "contact_busy", "The contact was changed concurrently; retry the request.")


class _Rematch(Exception):
    """The contact an upsert matched was erased before it could be locked."""


def _upsert_once(tenant, data, *, phone, email, identities, now) -> UpsertResult:
    matches: dict[str, int] = {}
    if phone:
        pk = Contact.objects.filter(phone=phone).values_list("pk", flat=True).first()
        if pk:
            matches["phone"] = pk
    if email:
        pk = Contact.objects.filter(email=email).values_list("pk", flat=True).first()
        if pk:
            matches["email"] = pk
    for channel, external_id in identities:
        pk = (ContactIdentity.objects.filter(channel=channel, external_id=external_id)
              .values_list("contact_id", flat=True).first())
        if pk:
            matches[f"external_id:{channel}"] = pk
    ids = sorted(set(matches.values()))
    if len(ids) > 1:
        raise ApiError(409, "contact_conflict",
                       "The phone, e-mail and external ids belong to different contacts; merge them first.",
                       details={"contact_ids": ids, "matched_by": matches})
    if ids:
        contact = Contact.objects.select_for_update().filter(pk=ids[0]).first()
        if contact is None:
            raise _Rematch  # erased since it was matched: match again
        created = False
    else:
        contact = Contact(tenant=tenant, first_seen_at=now)
        created = True
    for name in _PLAIN_FIELDS:
        if name in data:
            setattr(contact, name, data[name])
    if phone:
        contact.phone = phone
    if email:
        contact.email = email
    if "tags" in data:
        contact.tags = list(dict.fromkeys([*(contact.tags or []), *data["tags"]])) if not created else \
            list(dict.fromkeys(data["tags"]))
    if "attributes" in data:
        contact.attributes = {**(contact.attributes or {}), **data["attributes"]}
    contact.save()
    _attach_identities(tenant, contact, identities)
    return UpsertResult(contact=contact, created=created, matched_by=sorted(matches))


def _attach_identities(tenant, contact, identities: Iterable[tuple[str, str]]) -> None:
    for channel, external_id in identities:
        owner = (ContactIdentity.objects.filter(channel=channel, external_id=external_id)
                 .values_list("contact_id", flat=True).first())
        if owner is None:
            ContactIdentity.objects.create(tenant=tenant, contact=contact, channel=channel, external_id=external_id)
        elif owner != contact.pk:
            raise ApiError(409, "contact_duplicate", f"{channel} id {external_id} belongs to another contact.",
                           details={"field": "external_ids", "contact_id": owner})


def contact_update(*, contact: Contact, data: Mapping) -> Contact:
    """PATCH: given fields replace the stored ones (tags and attributes too); external ids
    are added. A phone or e-mail that another contact has is a 409 naming it."""
    tenant = contact.tenant
    with tenant_scope(tenant):
        changes: dict = {}
        if "phone" in data:
            changes["phone"] = _clean_phone(tenant, data["phone"])
        if "email" in data:
            changes["email"] = _clean_email(data["email"])
        for name in (*_PLAIN_FIELDS, "tags", "attributes"):
            if name in data:
                changes[name] = data[name]
        identities = _clean_identities(data.get("external_ids"))
        for name in ("phone", "email"):
            value = changes.get(name)
            if value:
                other = Contact.objects.filter(**{name: value}).exclude(pk=contact.pk).values_list("pk", flat=True)
                if other:
                    raise ApiError(409, "contact_duplicate", f"Another contact already has this {name}.",
                                   details={"field": name, "contact_id": other[0]})
        try:
            with transaction.atomic():
                # The row as it is now, locked: a concurrent erasure answers 404 instead of the save
                # inserting the erased person again, and only the given fields are written (a message's
                # last_seen_at, set meanwhile, stays).
                locked = Contact.objects.select_for_update().filter(pk=contact.pk).first()
                if locked is None:
                    raise ApiError(404, "contact_not_found", "No contact with that id (it was just erased).")
                for name, value in changes.items():
                    setattr(locked, name, value)
                locked.save(update_fields=[*changes, "updated_at"])
                _attach_identities(tenant, locked, identities)
        except IntegrityError:
            raise ApiError(409, "contact_duplicate",
                           "Another contact took this phone, e-mail or external id at the same moment.") from None
    return locked


def contact_delete(*, contact: Contact, actor: str = "", reason: str = "") -> ContactDeletion:
    """Erase a contact with its history and identities, and record that it happened.

    The contact's conversations (models in ``ERASED_WITH_CONTACT``) are deleted with it,
    whatever their foreign key says; other apps' rows go as their foreign keys say
    (CASCADE deletes them, SET_NULL detaches them); a PROTECT reference refuses the
    deletion with a 409. The record keeps the old id and per-model counts, never the
    personal data itself.
    """
    tenant = contact.tenant
    with tenant_scope(tenant), transaction.atomic():
        contact_id = contact.pk
        _lock_conversations_of([contact_id])
        if not Contact.objects.select_for_update().filter(pk=contact_id).exists():
            # erased by a concurrent request since it was read: one erasure, one record
            raise ApiError(404, "contact_not_found", "No contact with that id (it was just erased).")
        removed: dict[str, int] = {}
        try:
            for rel in Contact._meta.related_objects:
                if rel.related_model._meta.label in ERASED_WITH_CONTACT:
                    _, counts = rel.related_model._base_manager.filter(**{rel.field.name: contact_id}).delete()
                    _add_counts(removed, counts)
            _, counts = contact.delete()
            _add_counts(removed, counts)
        except ProtectedError as exc:
            blocking = sorted({obj._meta.label for obj in exc.protected_objects})
            raise ApiError(409, "contact_protected", "Other records still need this contact.",
                           details={"models": blocking}) from None
        return ContactDeletion.objects.create(tenant=tenant, contact_id=contact_id, actor=actor[:200],
                                              reason=reason[:500], removed=removed)


def _lock_conversations_of(contact_ids: list[int]) -> None:
    """Lock the contacts' conversations (``ERASED_WITH_CONTACT``), in id order, before their rows.

    One order everywhere: a chat turn updates the conversation, then the contact
    (conversations/store.py); an erasure or a merge that locked the contact first deadlocked
    with it. ``FOR NO KEY UPDATE``, the lock that turn's UPDATE takes: it queues behind (or
    ahead of) the turn, yet not behind a foreign key check (a follow-up holding the contact
    while its deferred check reads the conversation at commit deadlocked with ``FOR UPDATE``)."""
    for rel in Contact._meta.related_objects:
        if rel.related_model._meta.label in ERASED_WITH_CONTACT:
            list(rel.related_model._base_manager.select_for_update(no_key=True)
                 .filter(**{f"{rel.field.name}__in": contact_ids}).order_by("pk").values_list("pk", flat=True))


def _add_counts(total: dict[str, int], counts: Mapping[str, int]) -> None:
    for label, n in counts.items():
        if n:
            total[label] = total.get(label, 0) + n


def contact_merge(*, target: Contact, source: Contact, actor: str = "") -> ContactMerge:
    """Fold ``source`` into ``target``: every row of any app that points at the source
    (logs, identities, conversations, follow-ups, …) is moved to the target, found by
    walking ``Contact._meta.related_objects`` so relations added later are covered too.
    The target keeps its own values and takes the source's where it has none; tags are
    united, attributes merged (target wins), opted_out if either had opted out.
    A row that cannot move (a unique constraint of its own) aborts the whole merge: 409.
    """
    if target.pk == source.pk:
        raise ApiError(422, "merge_same_contact", "A contact cannot be merged into itself.")
    if target.tenant_id != source.tenant_id:
        raise ValueError("contacts of different tenants cannot be merged")
    tenant = target.tenant
    with tenant_scope(tenant), transaction.atomic():
        _lock_conversations_of([source.pk])  # they move to the target: locked first, as everywhere
        # Lock both in id order so two opposite merges cannot deadlock.
        locked = {c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=[target.pk, source.pk])
                  .order_by("pk")}
        if len(locked) != 2:
            raise ApiError(404, "contact_not_found", "No contact with that id.")
        target, source = locked[target.pk], locked[source.pk]
        moved = _move_relations(source, target)

        phone, email = source.phone, source.email
        merged = {
            "name": target.name or source.name,
            "phone": target.phone or phone,
            "email": target.email or email,
            "tags": list(dict.fromkeys([*(target.tags or []), *(source.tags or [])])),
            "attributes": {**(source.attributes or {}), **(target.attributes or {})},
            "opted_out": target.opted_out or source.opted_out,
            "first_seen_at": min(filter(None, [target.first_seen_at, source.first_seen_at]), default=None),
            "last_seen_at": max(filter(None, [target.last_seen_at, source.last_seen_at]), default=None),
        }
        # The source gives up its phone and e-mail first: they are unique per tenant.
        source_id = source.pk
        source.delete()
        for name, value in merged.items():
            setattr(target, name, value)
        target.save()
        return ContactMerge.objects.create(tenant=tenant, target_contact_id=target.pk, source_contact_id=source_id,
                                           moved=moved, actor=actor[:200])


def _move_relations(source: Contact, target: Contact) -> dict[str, int]:
    """Repoint every foreign key (and auto-created many-to-many link) at ``target``."""
    moved: dict[str, int] = {}
    for rel in Contact._meta.related_objects:
        if rel.many_to_many:
            through = rel.through if rel.through else None
            if through is None or not through._meta.auto_created:
                continue  # an explicit through model has its own foreign key, moved as one below
            fk_name = rel.field.m2m_reverse_field_name()
            other_name = rel.field.m2m_field_name()
            rows = through._base_manager.filter(**{fk_name: source.pk})
            already = set(through._base_manager.filter(**{fk_name: target.pk}).values_list(other_name, flat=True))
            # The target already linked to that object: the source's link is a duplicate, not data.
            rows.filter(**{f"{other_name}__in": already}).delete()
            count = rows.update(**{fk_name: target.pk})
            label = f"{rel.related_model._meta.label}.{rel.field.name}"
        else:
            # _base_manager: the model's plain manager, so no scoping rules of its app get
            # in the way; the filter on the source contact is what limits the rows.
            model = rel.related_model
            try:
                with transaction.atomic():
                    count = model._base_manager.filter(**{rel.field.name: source.pk}).update(
                        **{rel.field.name: target.pk})
            except IntegrityError:
                raise ApiError(409, "merge_conflict",
                               f"{model._meta.label} rows of both contacts cannot be combined.",
                               details={"model": model._meta.label, "field": rel.field.name}) from None
            label = f"{model._meta.label}.{rel.field.name}"
        if count:
            moved[label] = count
    return moved
