"""The audit trail's writer: who created, changed or deleted tenants, keys, documents,
contacts and follow-ups, cleaned of secrets and personal data.

``audit_record()`` is the one writer. Its recorders (the API requests and admin changes,
``tenants.audit.AuditMiddleware``) call it without any app having to; services that change
things outside both (commands, tasks) call it themselves with ``actor="system"``.

Imports no app: an API caller comes in as its label with ``source=AuditEvent.SOURCE_API``.
"""

from __future__ import annotations

import re

from django.db import models

from agent_project.models import AuditEvent
from agent_project.requestlog import mask_text, request_id_var

MAX_VALUE_CHARS = 200
SECRET_FIELDS = re.compile(r"(api_?key|secret|password|token)", re.IGNORECASE)


def _actor_fields(actor) -> dict:
    if isinstance(actor, models.Model):  # an admin user
        return {"actor": f"admin:{actor.get_username()}", "actor_user": actor, "source": AuditEvent.SOURCE_ADMIN}
    return {"actor": str(actor or "system"), "source": AuditEvent.SOURCE_SYSTEM}


def _object_fields(obj) -> dict:
    if isinstance(obj, models.Model):
        return {"object_type": obj._meta.label_lower, "object_id": str(obj.pk or ""),
                "object_repr": str(obj)[:200]}
    if isinstance(obj, tuple):  # ("kb/documents", 12[, "repr"]) for things known only by name and id
        kind, pk, *label = obj
        return {"object_type": str(kind), "object_id": "" if pk is None else str(pk),
                "object_repr": str(label[0])[:200] if label else ""}
    return {"object_type": str(obj), "object_id": ""}


def clean_changes(changes) -> dict:
    """What goes into ``changes``: secrets replaced by ``"[set]"``, long texts cut,
    e-mails and phone numbers masked (the audit log is not a copy of customer data)."""
    if not isinstance(changes, dict):
        return {"value": clean_value(changes)}
    return {str(k): ("[set]" if SECRET_FIELDS.search(str(k)) and v not in (None, "") else clean_value(v))
            for k, v in changes.items()}


def clean_value(value):
    if isinstance(value, str):
        value = mask_text(value)
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + f"… ({len(value)} chars)"
    if isinstance(value, dict):
        return clean_changes(value)
    if isinstance(value, (list, tuple)):
        return [clean_value(v) for v in value[:20]] + ([f"… ({len(value)} items)"] if len(value) > 20 else [])
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return clean_value(str(value))


def audit_record(*, actor, action: str, obj, tenant=None, changes=None, source: str | None = None) -> AuditEvent:
    """Append one audit entry.

    ``actor``: an admin ``User``, or a label such as ``"system"`` or an API key's (with
    ``source=AuditEvent.SOURCE_API``);
    ``obj``: a model instance, or ``(object_type, object_id)``; ``tenant``: a
    ``Tenant``, a tenant id or None; ``changes``: what changed (cleaned of secrets
    and personal data before it is stored)."""
    tenant_id = getattr(tenant, "pk", tenant) or ""
    fields = {**_actor_fields(actor), **_object_fields(obj)}
    if source:
        fields["source"] = source
    return AuditEvent.objects.create(tenant_id=str(tenant_id), action=action, changes=clean_changes(changes or {}),
                                     request_id=request_id_var.get(), **fields)
