"""Cross-cutting tables: the audit trail and the database rate-limit counters."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who created, changed or deleted what. Append-only; read in the admin.

    Not a ``TenantOwned`` row on purpose: operators read it across tenants, and an
    entry must outlive the tenant it talks about (so ``tenant_id`` is plain text,
    not a foreign key that would cascade)."""

    SOURCE_API = "api"
    SOURCE_ADMIN = "admin"
    SOURCE_SYSTEM = "system"
    SOURCES = [(SOURCE_API, "API"), (SOURCE_ADMIN, "Admin"), (SOURCE_SYSTEM, "System")]

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    tenant_id = models.CharField(max_length=64, blank=True, db_index=True)
    actor = models.CharField(max_length=150, help_text='"key:sk_live_ab12", "global", "admin:alice" or "system".')
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    source = models.CharField(max_length=16, choices=SOURCES, default=SOURCE_SYSTEM)
    action = models.CharField(max_length=64, db_index=True, help_text="create, update, delete, or an action's name.")
    object_type = models.CharField(max_length=100, db_index=True, help_text='e.g. "tenants.apikey" or "kb/documents".')
    object_id = models.CharField(max_length=100, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_id}".strip()


class RateLimitCounter(models.Model):
    """One sliding-window counter (``bucket:window``) for the database rate-limit store.
    The migration makes the table UNLOGGED; ``ratelimit_prune`` deletes expired rows."""

    key = models.CharField(max_length=200, primary_key=True)
    count = models.IntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)
