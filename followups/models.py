from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django_scopes import ScopedManager

from tenants.models import Tenant, TenantOwned


def new_idempotency_key() -> str:
    return f"fu_{uuid.uuid4().hex}"


class FollowUp(TenantOwned):
    """A message to send to one contact at (or after) ``scheduled_at``.

    Life cycle: ``pending → sending → sent | failed``, or ``cancelled`` while pending.
    ``next_attempt_at`` is when the dispatcher may next take it (the scheduled time,
    deferred to working hours, or pushed back after a failure); ``sending`` rows carry
    a lease, and a row whose lease ran out is taken again (its worker died mid-send).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="followups")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="followups")
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.SET_NULL, null=True,
                                     blank=True, related_name="followups")
    channel = models.CharField(max_length=32, help_text="Chooses the sender (webhook, log, later WhatsApp...).")
    user_id = models.CharField(max_length=200, blank=True, help_text="The contact's id on that channel.")
    message = models.TextField(blank=True, help_text="Text or a template like 'Halo {name}'; empty = AI-written.")
    variables = models.JSONField(default=dict, blank=True, help_text="Values for the template's {placeholders}.")
    text_sent = models.TextField(blank=True, help_text="The text actually sent, fixed at the first attempt.")
    text_origin = models.CharField(max_length=120, blank=True,
                                   help_text="'message', 'template' or 'ai:<provider>/<model>'.")
    scheduled_at = models.DateTimeField()
    respect_working_hours = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True, help_text="The worker that last took it.")
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, default=new_idempotency_key,
                                       help_text="Sent with every attempt so the receiver can drop repeats.")
    created_by = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["next_attempt_at", "id"]
        verbose_name = "follow-up"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="followup_unique_key_per_tenant"),
        ]
        indexes = [
            # the dispatcher's two questions, across tenants: what is due, whose lease ran out
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="followup_due"),
            models.Index(fields=["lease_expires_at"], condition=Q(status="sending"), name="followup_leased"),
            models.Index(fields=["tenant", "status", "next_attempt_at"], name="followup_tenant_status"),
            models.Index(fields=["tenant", "contact", "scheduled_at"], name="followup_tenant_contact"),
            models.Index(fields=["tenant", "scheduled_at"], name="followup_tenant_scheduled"),
        ]

    def __str__(self) -> str:
        return f"follow-up {self.pk} ({self.status})"
