"""Conversations in the operator console, and the playground: pick a tenant, chat with
it, and see the bubbles, the retrieved passages with their scores and the prompt
that was sent, so an edit to persona, SOP or knowledge can be tried at once."""

from __future__ import annotations

import json

from django.contrib import admin
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join

from agent_project.admin import ModelAdmin
from agent_project.errors import ApiError
from agent_project.limits import unstorable_text
from agent_project.lib.llm import ChatTurn, model_label
from conversations.bubbles import CHANNEL_LIMITS
from conversations.models import Conversation, Message
from conversations.services.prepare import chat_prepare
from conversations.services.reply import chat_complete
from knowledge.selectors import RELEVANCE_THRESHOLD
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def tool_calls_html(calls: list[dict]):
    """The tool calls stored on a message, one line each: name(arguments) → result or error."""
    if not calls:
        return "—"
    return format_html_join(
        "", '<div class="tool-call"><code>{}</code>({}) → {} <span class="quiet">{} ms</span></div>',
        ((c.get("name"), json.dumps(c.get("arguments"), ensure_ascii=False),
          (f"error {c['error'].get('code')}: {c['error'].get('message')}" if c.get("error")
           else json.dumps(c.get("result"), ensure_ascii=False)[:300]), c.get("duration_ms"))
         for c in calls))


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ["created_at", "role", "content", "tools_called", "provider", "model", "prompt_tokens",
              "completion_tokens", "total_ms", "error_code", "feedback"]
    readonly_fields = fields

    @admin.display(description="tool calls")
    def tools_called(self, obj):
        return tool_calls_html(obj.tool_calls)
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(ModelAdmin):
    list_display = ["id", "tenant", "channel", "user_id", "contact", "status", "last_message_at"]
    list_select_related = ["tenant", "contact"]  # contact may be empty: Django's own select_related skips it
    list_filter = ["tenant", "channel", "status"]
    search_fields = ["user_id", "tenant__id", "contact__name", "contact__phone"]
    # status is changed through the operator inbox (channels), which tells the customer and
    # sends the handoff event; editing the field here would skip both.
    readonly_fields = ["tenant", "channel", "user_id", "contact", "status", "created_at", "updated_at",
                       "last_message_at"]
    fields = ["tenant", "channel", "user_id", "contact", "status", "created_at", "updated_at", "last_message_at"]
    inlines = [MessageInline]
    change_list_template = "admin/conversations/conversation/change_list.html"

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        urls = [
            path("playground/", self.admin_site.admin_view(self.playground_view), name="conversations_playground"),
            path("playground/send/", self.admin_site.admin_view(self.playground_send),
                 name="conversations_playground_send"),
        ]
        return urls + super().get_urls()

    def playground_view(self, request):
        if not self.has_view_permission(request):
            return TemplateResponse(request, "admin/conversations/playground.html", status=403,
                                    context={**self.admin_site.each_context(request), "forbidden": True})
        context = {
            **self.admin_site.each_context(request),
            "title": "Chat playground",
            "tenants": Tenant.objects.filter(is_active=True).order_by("id"),
            "channels": list(CHANNEL_LIMITS),
            "default_user_id": f"playground-{request.user.get_username()}",
            "llm": model_label(),
            "threshold": RELEVANCE_THRESHOLD,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/conversations/playground.html", context)

    def playground_send(self, request):
        """Runs the same pipeline as ``POST /chat`` and returns what the operator needs to see."""
        if request.method != "POST":
            return JsonResponse({"error": {"code": "method_not_allowed", "message": "POST only."}}, status=405)
        # Sending writes a conversation, its messages and the contact's history: more than viewing.
        if not self.has_change_permission(request):
            return JsonResponse({"error": {"code": "permission_denied", "message": "Sending needs the permission to "
                                           "change conversations."}}, status=403)
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": {"code": "malformed_request", "message": "Send JSON."}}, status=400)
        fields = ("tenant_id", "message", "user_id", "channel", "locale")
        if not isinstance(data, dict) or any(not isinstance(data.get(f) or "", str) for f in fields):
            return JsonResponse({"error": {"code": "malformed_request", "message": "Send a JSON object whose "
                                           f"{', '.join(fields)} are strings."}}, status=400)
        if unstorable_text(data) is not None:
            return JsonResponse({"error": {"code": "validation_error", "message": "Text may not contain NUL "
                                           "characters or unpaired surrogates."}}, status=400)
        tenant = Tenant.objects.filter(pk=data.get("tenant_id") or "", is_active=True).first()
        text = (data.get("message") or "").strip()
        user_id = (data.get("user_id") or f"playground-{request.user.get_username()}")[:200]
        channel = data.get("channel") or "web"
        if tenant is None or not text or channel not in CHANNEL_LIMITS:
            return JsonResponse({"error": {"code": "invalid_request",
                                           "message": "Choose an active tenant and a channel, and type a message."}},
                                status=400)
        try:
            with tenant_scope(tenant):
                prepared = chat_prepare(tenant=tenant, user_id=user_id, channel=channel,
                                        messages=[ChatTurn("user", text)], locale=data.get("locale") or None)
                result = chat_complete(prepared)
        except ApiError as exc:
            return JsonResponse({"error": {"code": exc.code, "message": exc.message, "details": exc.details}},
                                status=exc.status_code)
        used = {h.chunk_id for h in prepared.hits}
        body = result.as_dict()
        body["prompt"] = prepared.prompt.as_text()
        body["retrieved"] = [
            {"title": h.title, "chunk_id": h.chunk_id, "document_id": h.document_id, "score": round(h.score, 4),
             "scores": h.scores, "text": h.text[:600], "used": h.chunk_id in used}
            for h in prepared.candidates
        ]
        body["threshold"] = RELEVANCE_THRESHOLD
        return JsonResponse(body)


@admin.register(Message)
class MessageAdmin(ModelAdmin):
    list_display = ["id", "tenant", "conversation_link", "role", "short", "tool_names", "provider", "total_ms",
                    "feedback", "created_at"]
    list_filter = ["tenant", "role", "provider", "feedback"]
    search_fields = ["content"]
    readonly_fields = [f.name for f in Message._meta.fields if f.name != "tool_calls"] + ["tools_called"]
    exclude = ["tool_calls"]

    @admin.display(description="tools")
    def tool_names(self, obj):
        return ", ".join(c.get("name", "?") + ("!" if c.get("error") else "") for c in obj.tool_calls) or ""

    @admin.display(description="tool calls")
    def tools_called(self, obj):
        return tool_calls_html(obj.tool_calls)

    def has_add_permission(self, request):
        return False

    @admin.display(description="conversation")
    def conversation_link(self, obj):
        return format_html('<a href="../conversation/{}/change/">{}</a>', obj.conversation_id, obj.conversation_id)

    @admin.display(description="content")
    def short(self, obj):
        return obj.content[:80]
