"""Reads of contacts and their history. Callers hold the tenant's scope (the API view
does); every query also names the tenant, so the right index is used."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime

from django.db.models import F, Q, QuerySet

from contacts.models import Contact, ContactLog
from contacts.normalize import InvalidValue, phone_normalize
from contacts.services.common import tenant_phone_region
from tenants.models import Tenant

# Reverse relations shown under these names in a contact's counts; others by model label.
_COUNT_NAMES = {
    "conversations.conversation": "conversations",
    "followups.followup": "follow_ups",
    "contacts.contactlog": "logs",
    "contacts.contactidentity": "identities",
}


def contact_list(*, tenant: Tenant, q: str = "", tag: str = "", last_seen_after: datetime | None = None,
                 last_seen_before: datetime | None = None) -> QuerySet[Contact]:
    qs = Contact.objects.filter(tenant=tenant).prefetch_related("identities")
    if q:
        q = q.strip()
        digits = "".join(ch for ch in q if ch.isdigit())
        match = Q(name__icontains=q) | Q(email__icontains=q)
        try:  # a whole number in any spelling the API takes ("+44 (0)7911 123456", "0812-3456-7890")
            match |= Q(phone=phone_normalize(q, tenant_phone_region(tenant)))
        except InvalidValue:
            pass
        if len(digits) >= 3:
            # "0812 3456" finds +6281234567890: compare digits, dropping a national leading 0.
            match |= Q(phone__contains=digits.lstrip("0") or digits)
        match |= Q(phone__contains=q)
        qs = qs.filter(match)
    if tag:
        qs = qs.filter(tags__contains=[tag])
    if last_seen_after:
        qs = qs.filter(last_seen_at__gte=last_seen_after)
    if last_seen_before:
        qs = qs.filter(last_seen_at__lt=last_seen_before)
    return qs.order_by(F("last_seen_at").desc(nulls_last=True), "-id")  # as the contact_tenant_last_seen index


def contact_log_list(*, tenant: Tenant, contact_id: int | None = None, channel: str = "",
                     since: datetime | None = None, until: datetime | None = None) -> QuerySet[ContactLog]:
    """Newest first. With a contact the (tenant, contact, at, id) index serves the order;
    without one, (tenant, at, id)."""
    qs = ContactLog.objects.filter(tenant=tenant)
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    if channel:
        qs = qs.filter(channel=channel)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-at", "-id")


def contact_counts(*, contact: Contact) -> dict[str, int]:
    """How many rows of every app point at the contact (conversations, follow-ups, logs…)."""
    counts = {"conversations": 0, "follow_ups": 0}
    for rel in Contact._meta.related_objects:
        if rel.many_to_many:
            continue
        model = rel.related_model
        name = _COUNT_NAMES.get(model._meta.label_lower, model._meta.label_lower)
        counts[name] = counts.get(name, 0) + model._base_manager.filter(**{rel.field.name: contact.pk}).count()
    return counts


# --- CSV export -----------------------------------------------------------------

CSV_COLUMNS = ["id", "name", "phone", "email", "tags", "external_ids", "attributes", "opted_out",
               "first_seen_at", "last_seen_at", "created_at"]


def _safe_cell(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet programs (CSV injection).
    # Phones are exempt: they are validated E.164 and start with "+" by design.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def contact_csv_row(contact: Contact) -> list[str]:
    def iso(value):
        return value.isoformat() if value else ""

    identities = sorted(f"{i.channel}:{i.external_id}" for i in contact.identities.all())
    return [
        str(contact.pk),
        _safe_cell(contact.name or ""),
        contact.phone or "",
        _safe_cell(contact.email or ""),
        _safe_cell(";".join(str(t) for t in contact.tags or [])),
        _safe_cell(";".join(identities)),
        _safe_cell(json.dumps(contact.attributes or {}, ensure_ascii=False, sort_keys=True)),
        "true" if contact.opted_out else "false",
        iso(contact.first_seen_at),
        iso(contact.last_seen_at),
        iso(contact.created_at),
    ]


class _Echo:
    def write(self, value):
        return value


def contact_csv_lines(contacts: QuerySet[Contact]) -> Iterator[str]:
    """The CSV a line at a time (header first), reading the table in chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for contact in contacts.prefetch_related("identities").iterator(chunk_size=1000):
        yield writer.writerow(contact_csv_row(contact))
