"""Erasing a contact with its history (``contact_delete``), recorded without the personal data,
and the lock order every erasure and merge keeps (``lock_conversations_of``)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
from django.db.models import ProtectedError

from agent_project.errors import ApiError
from contacts.models import Contact, ContactDeletion
from tenants.scoping import tenant_scope

# Rows that are the contact's personal data although their foreign key only detaches them
# (SET_NULL) when a contact is removed for other reasons: a conversation is the chat
# history with that person, so erasing the person erases it (and its messages) too.
ERASED_WITH_CONTACT = ("conversations.Conversation",)


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
        lock_conversations_of([contact_id])
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


def lock_conversations_of(contact_ids: list[int]) -> None:
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
