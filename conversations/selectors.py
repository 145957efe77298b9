"""Reads of conversations that other apps ask for through a registry (they sit below
conversations and must not import it): ``conversation_exists`` answers contacts' check of a
log's ``conversation_id`` (``contacts.links``, registered in ``conversations.apps``)."""

from __future__ import annotations

from conversations.models import Conversation
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def conversation_exists(*, tenant: Tenant, conversation_id: int) -> bool:
    """Is ``conversation_id`` one of the tenant's conversations?"""
    with tenant_scope(tenant):
        return Conversation.objects.filter(tenant=tenant, pk=conversation_id).exists()
