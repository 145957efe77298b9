"""Channel settings with masked secrets, and the operator inbox: read the transcript,
reply on the customer's channel, take a conversation over, hand it back, close it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from agent_project.admin import ModelAdmin
from agent_project.errors import ApiError
from agent_project.lib.encryption import mask
from channels.handoff.operator import operator_reply
from channels.handoff.status import conversation_status_set
from channels.models import ChannelConfig, HandoffEvent, InboundMessage, OperatorConversation
from channels.services import channel_config_check, channel_telegram_register, webhook_path
from conversations.models import Conversation

SECRETS = ["whatsapp_access_token", "whatsapp_app_secret", "whatsapp_verify_token", "telegram_bot_token",
           "telegram_webhook_secret"]


def _secret_field() -> forms.CharField:
    return forms.CharField(required=False, strip=True,
                           widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))


class ChannelConfigForm(forms.ModelForm):
    """Secrets are write-only: the field is always shown empty; leave it empty to keep the
    stored value, type a new one to replace it, or tick "clear" to remove it."""

    whatsapp_access_token = _secret_field()
    whatsapp_app_secret = _secret_field()
    whatsapp_verify_token = _secret_field()
    telegram_bot_token = _secret_field()
    telegram_webhook_secret = _secret_field()
    clear_whatsapp_access_token = forms.BooleanField(required=False, label="clear")
    clear_whatsapp_app_secret = forms.BooleanField(required=False, label="clear")
    clear_whatsapp_verify_token = forms.BooleanField(required=False, label="clear")
    clear_telegram_bot_token = forms.BooleanField(required=False, label="clear")
    clear_telegram_webhook_secret = forms.BooleanField(required=False, label="clear")

    class Meta:
        model = ChannelConfig
        fields = ["tenant", "whatsapp_enabled", "whatsapp_phone_number_id", "whatsapp_access_token",
                  "whatsapp_app_secret", "whatsapp_verify_token", "whatsapp_followup_template",
                  "whatsapp_template_language", "telegram_enabled", "telegram_bot_token", "telegram_webhook_secret"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRETS:
            current = getattr(self.instance, name, "") if self.instance.pk else ""
            self.fields[name].label = ChannelConfig._meta.get_field(name).verbose_name.capitalize()
            self.fields[name].help_text = (f"Stored: {mask(current)}. Leave empty to keep it." if current
                                           else "Not set.")
            self.initial[name] = ""

    def clean(self):
        data = super().clean()
        for name in SECRETS:
            if data.get(f"clear_{name}"):
                data[name] = ""
            elif not data.get(name):
                data[name] = getattr(self.instance, name, "") if self.instance.pk else ""
        return data

    def _post_clean(self):
        super()._post_clean()
        try:
            channel_config_check(self.instance)
        except ApiError as exc:
            self.add_error(None, exc.message)


@admin.register(ChannelConfig)
class ChannelConfigAdmin(ModelAdmin):
    form = ChannelConfigForm
    secret_fields = tuple(SECRETS)
    list_display = ["tenant", "whatsapp_enabled", "whatsapp_phone_number_id", "whatsapp_token", "telegram_enabled",
                    "telegram_bot_id", "telegram_token", "updated_at"]
    list_filter = ["whatsapp_enabled", "telegram_enabled"]
    search_fields = ["tenant__id", "tenant__name", "whatsapp_phone_number_id", "telegram_bot_id"]
    readonly_fields = ["webhook_urls", "telegram_bot_id", "updated_at"]
    actions = ["register_telegram_webhook"]

    def get_fieldsets(self, request, obj=None):
        clear = [f"clear_{s}" for s in SECRETS]
        return self.secrets_masked(request, obj, [
            (None, {"fields": ["tenant", "webhook_urls"]}),
            ("WhatsApp Cloud API", {"fields": [
                "whatsapp_enabled", "whatsapp_phone_number_id", ("whatsapp_access_token", clear[0]),
                ("whatsapp_app_secret", clear[1]), ("whatsapp_verify_token", clear[2]),
                "whatsapp_followup_template", "whatsapp_template_language"]}),
            ("Telegram", {"fields": ["telegram_enabled", ("telegram_bot_token", clear[3]), "telegram_bot_id",
                                     ("telegram_webhook_secret", clear[4])]}),
            (None, {"fields": ["updated_at"]}),
        ])

    @admin.display(description="WhatsApp token")
    def whatsapp_token(self, obj):
        return mask(obj.whatsapp_access_token) or "—"

    @admin.display(description="Telegram token")
    def telegram_token(self, obj):
        return mask(obj.telegram_bot_token) or "—"

    @admin.display(description="Webhook addresses")
    def webhook_urls(self, obj):
        if not obj or not obj.tenant_id:
            return "—"
        return format_html("WhatsApp: <code>{}</code><br>Telegram: <code>{}</code>",
                           webhook_path(tenant=obj.tenant, channel="whatsapp"),
                           webhook_path(tenant=obj.tenant, channel="telegram"))

    @admin.action(description="Register the Telegram webhook (setWebhook) for the selected tenants",
                  permissions=["change"])
    def register_telegram_webhook(self, request, queryset):
        base = request.build_absolute_uri("/")
        for config in queryset.select_related("tenant"):
            try:
                outcome = channel_telegram_register(tenant=config.tenant, public_base_url=base)
            except ApiError as exc:
                self.message_user(request, f"{config.tenant_id}: {exc.message}", messages.ERROR)
                continue
            level = messages.SUCCESS if outcome.ok else messages.ERROR
            self.message_user(request, f"{config.tenant_id}: {'webhook set' if outcome.ok else outcome.detail}",
                              level)


class OperatorForm(forms.ModelForm):
    reply = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                            help_text="Sent on the customer's channel; replying takes the conversation over.")
    set_status = forms.ChoiceField(
        required=False, label="Status",
        choices=[("", "— keep —"), ("human", "human: I take over"), ("bot", "bot: hand back to the assistant"),
                 ("closed", "closed")])
    notify = forms.BooleanField(required=False, initial=True, label="Tell the customer about the status change")

    class Meta:
        model = OperatorConversation
        fields = []


@admin.register(OperatorConversation)
class OperatorInboxAdmin(ModelAdmin):
    form = OperatorForm
    list_display = ["id", "tenant", "channel", "user_id", "contact", "status", "last_message_at"]
    list_select_related = ["tenant", "contact"]  # contact may be empty: Django's own select_related skips it
    list_filter = ["status", "channel", "tenant"]
    search_fields = ["user_id", "tenant__id", "contact__name", "contact__phone"]
    readonly_fields = ["tenant", "channel", "user_id", "contact", "status", "transcript", "handoffs"]
    fields = ["tenant", "channel", "user_id", "contact", "status", "transcript", "handoffs", "reply", "set_status",
              "notify"]
    actions = ["take_over", "hand_back", "close"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Messages")
    def transcript(self, obj):
        rows = obj.messages.order_by("-created_at", "-id")[:50]
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td><b>{}</b></td><td style='white-space:pre-wrap'>{}</td></tr>",
            ((m.created_at.strftime("%Y-%m-%d %H:%M"), m.role, m.content) for m in reversed(list(rows)))))

    @admin.display(description="Status changes")
    def handoffs(self, obj):
        events = HandoffEvent.objects.filter(conversation=obj).order_by("-created_at")[:20]
        return format_html_join("", "<div>{}: {} → {} ({}, {}) webhook: {}</div>", (
            (e.created_at.strftime("%Y-%m-%d %H:%M"), e.from_status, e.to_status, e.get_reason_display(),
             e.actor or "-", e.webhook_status or "pending") for e in events)) or "—"

    def save_model(self, request, obj, form, change):
        actor = f"admin:{request.user.get_username()}"
        text = form.cleaned_data.get("reply", "").strip()
        try:
            if text:
                operator_reply(conversation=obj, text=text, actor=actor)
                self.message_user(request, "Reply sent.", messages.SUCCESS)
            status = form.cleaned_data.get("set_status")
            if status:
                conversation_status_set(conversation=obj, status=status, reason="operator", actor=actor,
                                        notify=form.cleaned_data.get("notify", False))
        except ApiError as exc:
            self.message_user(request, f"Not sent: {exc.message} ({exc.code})", messages.ERROR)
            request.inbox_failed = True

    def log_change(self, request, obj, message):
        if getattr(request, "inbox_failed", False):
            return None  # nothing was changed: not in the history, nor in the audit trail
        return super().log_change(request, obj, message)

    def response_change(self, request, obj):
        if getattr(request, "inbox_failed", False):
            # Back to the conversation with the reason, not Django's "changed successfully".
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def _switch(self, request, queryset, status):
        actor = f"admin:{request.user.get_username()}"
        changed = 0
        for conversation in queryset.select_related("tenant", "contact"):
            if conversation_status_set(conversation=conversation, status=status, reason="operator",
                                       actor=actor):
                changed += 1
        self.message_user(request, f"{changed} conversation(s) now {status}.", messages.SUCCESS)

    @admin.action(description="Take over (human)", permissions=["change"])
    def take_over(self, request, queryset):
        self._switch(request, queryset, Conversation.Status.HUMAN)

    @admin.action(description="Hand back to the bot", permissions=["change"])
    def hand_back(self, request, queryset):
        self._switch(request, queryset, Conversation.Status.BOT)

    @admin.action(description="Close", permissions=["change"])
    def close(self, request, queryset):
        self._switch(request, queryset, Conversation.Status.CLOSED)


@admin.register(InboundMessage)
class InboundMessageAdmin(ModelAdmin):
    list_display = ["id", "tenant", "channel", "user_id", "kind", "status", "outcome", "sent_at", "received_at"]
    list_filter = ["channel", "status", "kind", "tenant"]
    search_fields = ["external_id", "user_id", "text"]
    readonly_fields = [f.name for f in InboundMessage._meta.fields]

    def has_add_permission(self, request):
        return False
