"""django-q2 tasks: take an id, open the tenant's scope, call the service."""

from __future__ import annotations

import logging

from django_scopes import scopes_disabled

from knowledge.models import Document
from knowledge.services.processing import document_process, documents_recover as _documents_recover
from tenants.scoping import tenant_scope

logger = logging.getLogger(__name__)


def document_process_task(document_id: int) -> str | None:
    with scopes_disabled():  # the id is all the task knows; the row tells us the tenant
        document = Document.objects.select_related("tenant").filter(pk=document_id).first()
    if document is None:
        return None
    with tenant_scope(document.tenant):
        processed = document_process(document_id=document_id)
    return processed.status if processed else None


def documents_recover() -> dict:
    """CROSS-TENANT. The scheduled tick: re-queue (or give up on) documents whose processing task was lost."""
    counts = _documents_recover()
    if counts["requeued"] or counts["failed"]:
        logger.warning("knowledge: recovered stuck documents: %s", counts)
    return counts
