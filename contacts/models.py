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
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "phone"], condition=Q(phone__isnull=False),
                                    name="contact_unique_phone_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "email"], condition=Q(email__isnull=False),
                                    name="contact_unique_email_per_tenant"),
        ]
        indexes = [models.Index(fields=["tenant", "-last_seen_at"], name="contact_tenant_last_seen")]

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
