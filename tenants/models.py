from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from agent_project.lib.encryption import EncryptedTextField


def _webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Tenant(models.Model):
    """A business that Layan answers for. Its slug is the seed API's ``tenant_id``."""

    id = models.SlugField(primary_key=True, max_length=64, help_text="The tenant_id clients send, e.g. 'toko-bunga'.")
    name = models.CharField(max_length=200)
    persona = models.TextField(blank=True, help_text="Who the agent is and how it speaks.")
    sop = models.TextField("SOP", blank=True, help_text="Standard operating procedures the agent must follow.")
    locale = models.CharField(max_length=16, default="id-ID")
    timezone = models.CharField(max_length=64, default="Asia/Jakarta")
    working_hours = models.JSONField(default=dict, blank=True)
    holidays = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True, help_text="Where follow-ups and events are POSTed (signed).")
    webhook_secret = EncryptedTextField(blank=True, default=_webhook_secret,
                                        help_text="HMAC-SHA256 key for the X-Layan-Signature header (encrypted at "
                                                  "rest, like the channel secrets).")
    # Requests per minute; empty means the deployment's default (RATE_LIMIT_* settings).
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    chat_rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    upload_rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Human handoff policy (channels/handoff/status.py, docs/channels.md "Human handoff").
    handoff_on_unanswered = models.BooleanField(
        "hand over unanswered questions", default=True,
        help_text="When the assistant says it cannot help, hand the conversation to a person (the bot then stays "
                  "silent until an operator hands it back or the resume time below passes). Off: the bot keeps "
                  "answering. A customer who asks for a person is always handed over.")
    handoff_resume_minutes = models.PositiveIntegerField(
        "resume the bot after (minutes)", null=True, blank=True, default=30,
        help_text="While a person has a conversation and no operator has written in it for this many minutes "
                  "(since the hand-over or the operator's last message), the customer's next message goes back "
                  "to the bot, which answers it. Empty or 0: never; an operator must hand it back.")
    # Knowledge search (knowledge.analysis.SYNONYMS holds the built-in shop vocabulary).
    synonyms = models.JSONField(
        default=list, blank=True,
        help_text="Groups of words this business and its customers use for the same thing, one group a string: "
                  "[\"kulkas refrigerator fridge\", \"gamis abaya\"]. A customer's word the knowledge base never "
                  "uses is searched as the words of its group it does use.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class TenantOwned(models.Model):
    """Base of every tenant-owned row: it carries its tenant, and its default
    manager refuses to query unless a tenant scope is open (django-scopes), so a
    query that forgot its tenant raises instead of leaking."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = ScopedManager(tenant="tenant")

    class Meta:
        abstract = True


class ApiKey(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=32, db_index=True,
                              help_text="The first characters of the key, to find it (several keys may share it).")
    key_hash = models.CharField(max_length=64, unique=True,
                                help_text="SHA-256 of the whole key; the key itself is never stored.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        return "active"
