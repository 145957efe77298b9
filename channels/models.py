"""Per-tenant channel configuration, inbound message records, and the handoff log."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_scopes import ScopedManager

from agent_project.lib.encryption import EncryptedTextField
from conversations.models import Conversation as _Conversation
from tenants.models import Tenant, TenantOwned


class ChannelConfig(TenantOwned):
    """How one tenant is reached on WhatsApp (Cloud API) and Telegram (Bot API).

    Secrets (tokens, app secret, verify token, webhook secret) are encrypted at rest
    and never returned by the API (``channels.services.channel_config_public`` masks
    them). A WhatsApp phone number id and a Telegram bot belong to one tenant only
    (unique constraints), so an inbound delivery can never be attributed to two tenants.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="channel_config")

    whatsapp_enabled = models.BooleanField(default=False)
    whatsapp_phone_number_id = models.CharField(
        max_length=64, blank=True, help_text="The Cloud API phone number id (not the phone number itself).")
    whatsapp_access_token = EncryptedTextField(blank=True, help_text="System-user access token (Bearer).")
    whatsapp_app_secret = EncryptedTextField(blank=True, help_text="The Meta app secret: signs X-Hub-Signature-256.")
    whatsapp_verify_token = EncryptedTextField(blank=True, help_text="Your own token for the webhook verify handshake.")
    whatsapp_followup_template = models.CharField(
        max_length=512, blank=True,
        help_text="An approved template for follow-ups outside the 24-hour window; its body has one "
                  "parameter {{1}} that receives the follow-up text. Empty: such follow-ups are refused.")
    whatsapp_template_language = models.CharField(max_length=16, default="id", blank=True,
                                                  help_text="The template's language code, e.g. id or en_US.")

    telegram_enabled = models.BooleanField(default=False)
    telegram_bot_token = EncryptedTextField(blank=True, help_text="From @BotFather: <bot id>:<secret>.")
    telegram_bot_id = models.CharField(max_length=32, blank=True, editable=False,
                                       help_text="The numeric part of the token (not secret), kept unique.")
    telegram_webhook_secret = EncryptedTextField(
        blank=True, help_text="secret_token given to setWebhook; Telegram sends it in X-Telegram-Bot-Api-Secret-Token.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        verbose_name = "channel configuration"
        constraints = [
            models.UniqueConstraint(fields=["whatsapp_phone_number_id"], condition=~Q(whatsapp_phone_number_id=""),
                                    name="channel_whatsapp_number_unique"),
            models.UniqueConstraint(fields=["telegram_bot_id"], condition=~Q(telegram_bot_id=""),
                                    name="channel_telegram_bot_unique"),
        ]

    def __str__(self) -> str:
        return f"channels of {self.tenant_id}"

    @property
    def whatsapp_ready(self) -> bool:
        return bool(self.whatsapp_enabled and self.whatsapp_phone_number_id and self.whatsapp_access_token
                    and self.whatsapp_app_secret)

    @property
    def telegram_ready(self) -> bool:
        return bool(self.telegram_enabled and self.telegram_bot_token and self.telegram_webhook_secret)


class InboundMessage(TenantOwned):
    """One customer message as a platform delivered it. Unique per tenant + channel +
    the platform's message id: a redelivered webhook finds the row and is not processed
    again. The webhook stores it and answers; ``channels.tasks.inbound_process`` does the work."""

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        PROCESSING = "processing", "processing"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16)
    external_id = models.CharField(max_length=200, help_text="wamid… or <chat id>:<message id>.")
    user_id = models.CharField(max_length=200, help_text="wa_id or the Telegram chat id.")
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=32, help_text="text, image, audio, sticker, location, …")
    text = models.TextField(blank=True)
    sent_at = models.DateTimeField(help_text="When the customer sent it (the platform's timestamp).")
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When a worker last took it (processing), or when the recoverer last put it back on the "
                  "queue (received). channels.tasks.inbound_recover retries or abandons rows stuck past it.")
    outcome = models.CharField(max_length=64, blank=True,
                               help_text="replied, handoff, silent_human, media_reply, … or the failure code.")
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.SET_NULL, null=True,
                                     blank=True, related_name="+")

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel", "external_id"], name="inbound_unique_message"),
        ]
        indexes = [
            # the WhatsApp 24-hour window: this user's latest message
            models.Index(fields=["tenant", "channel", "user_id", "-sent_at"], name="inbound_user_latest"),
            # the recoverer's per-minute scan: only unfinished rows (few) are indexed
            models.Index(fields=["received_at"], name="inbound_unfinished",
                         condition=Q(status__in=["received", "processing"])),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.external_id} ({self.status})"


class HandoffEvent(TenantOwned):
    """One change of a conversation's status (bot ↔ human ↔ closed): who, why, and
    whether the tenant's webhook got the event."""

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", "the customer asked for a person"
        MODEL_CANNOT_HELP = "model_cannot_help", "the assistant could not help"
        OPERATOR = "operator", "an operator"
        CUSTOMER_MESSAGE = "customer_message", "the customer wrote again after it was closed"
        NO_OPERATOR_REPLY = "no_operator_reply", "no operator replied in time: back to the bot"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE,
                                     related_name="handoff_events")
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    actor = models.CharField(max_length=120, blank=True, help_text="The operator, API key or 'customer'/'assistant'.")
    note = models.TextField(blank=True)
    customer_notified = models.BooleanField(default=False)
    webhook_status = models.CharField(max_length=16, blank=True,
                                      help_text="sent, failed, skipped (no webhook_url) or empty while pending.")
    webhook_detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status} ({self.reason})"


class OperatorConversation(_Conversation):
    """The operator inbox in the admin: the same conversations, with reply and
    hand-back controls that go through the channel and the handoff service."""

    class Meta:
        proxy = True
        verbose_name = "operator inbox conversation"
        verbose_name_plural = "operator inbox"
