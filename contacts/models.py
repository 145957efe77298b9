from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_scopes import ScopedManager

from tenants.models import Tenant, TenantOwned


class Contact(TenantOwned):
    """One real customer of one tenant. Phone (E.164) and e-mail (normalised) are
    unique within a tenant, enforced by the database, not only by code."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=32, null=True, blank=True, help_text="E.164, e.g. +6281234567890")
    email = models.CharField(max_length=254, null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    opted_out = models.BooleanField(default=False, help_text="No follow-ups may be sent.")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        # Newest-seen first; never seen (imported, not yet written): last, not first as DESC puts NULLs.
        ordering = [models.F("last_seen_at").desc(nulls_last=True), "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "phone"], condition=Q(phone__isnull=False),
                                    name="contact_unique_phone_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "email"], condition=Q(email__isnull=False),
                                    name="contact_unique_email_per_tenant"),
        ]
        indexes = [models.Index(models.F("tenant"), models.F("last_seen_at").desc(nulls_last=True),
                                models.F("id").desc(), name="contact_tenant_last_seen")]

    def __str__(self) -> str:
        return self.name or self.phone or self.email or f"contact {self.pk}"


class ContactIdentity(TenantOwned):
    """How a channel knows the contact (WhatsApp number, Telegram chat id, web user id).
    Unique per tenant + channel, so one channel user is always one contact."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    channel = models.CharField(max_length=32)
    external_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel", "external_id"], name="identity_unique_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.external_id}"


class ContactLog(TenantOwned):
    """One line of a contact's conversation history, whatever the channel.
    ``external_message_id`` (the channel's own message id) makes recording idempotent:
    a webhook delivered twice stores one row."""

    ROLES = ("user", "assistant", "operator", "system")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="logs")
    role = models.CharField(max_length=16, choices=[(r, r) for r in ROLES])
    content = models.TextField()
    channel = models.CharField(max_length=32)
    at = models.DateTimeField(help_text="When the message was sent (the channel's time when known).")
    external_message_id = models.CharField(max_length=200, null=True, blank=True)
    # A plain id, not a foreign key: the history outlives (and does not depend on) the
    # conversations app's rows, and contacts must not import conversations.
    conversation_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_message_id"],
                                    condition=Q(external_message_id__isnull=False),
                                    name="contactlog_unique_external_id"),
        ]
        indexes = [
            # GET /contacts/logs?contact_id=…: newest first for one contact, read in index order.
            # channel rides along (INCLUDE) so a channel filter, and the paginator's count with
            # it, are answered from the index without visiting the table.
            models.Index(fields=["tenant", "contact", "-at", "-id"], include=["channel"],
                         name="contactlog_contact_at_ch"),
            # GET /contacts/logs without a contact: newest first across the tenant.
            models.Index(fields=["tenant", "-at", "-id"], name="contactlog_tenant_at"),
        ]

    def __str__(self) -> str:
        return f"{self.role}@{self.channel}: {self.content[:40]}"


class ContactDeletion(TenantOwned):
    """Proof that a contact was erased (personal-data-protection requests): when, by whom,
    and how many rows went with it. It holds no personal data: no name, phone or e-mail."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    contact_id = models.BigIntegerField(help_text="The id the contact had; the row itself is gone.")
    deleted_at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=200, blank=True, help_text="API key label or admin user.")
    reason = models.CharField(max_length=500, blank=True)
    removed = models.JSONField(default=dict, help_text="Rows removed per model, e.g. {'contacts.ContactLog': 12}.")

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return f"contact {self.contact_id} deleted {self.deleted_at:%Y-%m-%d %H:%M}"


class ContactMerge(TenantOwned):
    """Audit of a merge: which contact was folded into which, and how many rows moved."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    target_contact_id = models.BigIntegerField()
    source_contact_id = models.BigIntegerField()
    moved = models.JSONField(default=dict, help_text="Rows moved per relation.")
    actor = models.CharField(max_length=200, blank=True)
    merged_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-merged_at"]
