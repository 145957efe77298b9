from __future__ import annotations

from django.db import models
from django_scopes import ScopedManager

from tenants.models import Tenant, TenantOwned


class Conversation(TenantOwned):
    """One thread per tenant + channel + channel user (``user_id`` as the channel knows
    the customer: a WhatsApp number, a Telegram chat id, a web session id)."""

    class Status(models.TextChoices):
        BOT = "bot", "bot answers"
        HUMAN = "human", "a human operator has it"
        CLOSED = "closed", "closed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="conversations")
    channel = models.CharField(max_length=32, default="web")
    user_id = models.CharField(max_length=200)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="conversations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel", "user_id"], name="conversation_unique_per_user"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-last_message_at"], name="conversation_tenant_recent"),
            models.Index(fields=["tenant", "contact"], name="conversation_tenant_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.user_id}"


class Message(TenantOwned):
    """One turn. The user's turn is stored before the model is called (so a failing
    model loses nothing); the assistant's turn carries what was sent and how it was made."""

    class Role(models.TextChoices):
        USER = "user", "user"
        ASSISTANT = "assistant", "assistant"
        OPERATOR = "operator", "human operator"

    class Feedback(models.TextChoices):
        UP = "up", "thumbs up"
        DOWN = "down", "thumbs down"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    bubbles = models.JSONField(default=list, blank=True, help_text="The chat bubbles sent, in order.")
    sources = models.JSONField(default=list, blank=True, help_text="Knowledge passages the reply was grounded on.")
    tool_calls = models.JSONField(default=list, blank=True,
                                  help_text="Tools the model called for this reply: name, arguments, result, "
                                            "error, duration_ms, round.")
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    retrieval_ms = models.FloatField(null=True, blank=True)
    generation_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True,
                                  help_text="On a user turn: why no reply was produced (e.g. llm_timeout).")
    feedback = models.CharField(max_length=8, choices=Feedback.choices, blank=True)
    feedback_comment = models.TextField(blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="message_conversation_time")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"
