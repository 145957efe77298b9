"""Folding one contact into another (``contact_merge``): every row of any app that points at
the source moves to the target, found through ``Contact._meta.related_objects``."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from agent_project.errors import ApiError
from contacts.models import Contact, ContactMerge
from contacts.services.erasure import lock_conversations_of
from tenants.scoping import tenant_scope


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
        lock_conversations_of([source.pk])  # they move to the target: locked first, as everywhere
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
