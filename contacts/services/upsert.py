"""The contacts API's writes: create a contact or update the one a phone, e-mail or external id
matches (``contact_upsert``), and change one (``contact_update``). Input is cleaned before
anything is written; a value another contact holds is a 409 naming it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_project.errors import ApiError
from contacts.models import Contact, ContactIdentity
from contacts.normalize import InvalidValue, email_normalize, phone_normalize
from contacts.services.common import RETRIES, tenant_phone_region
from tenants.models import Tenant
from tenants.scoping import tenant_scope


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
