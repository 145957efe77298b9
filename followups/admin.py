from __future__ import annotations

from django.contrib import admin, messages

from agent_project.admin import ModelAdmin
from agent_project.errors import ApiError
from followups.models import FollowUp
from followups.services import followup_cancel, followup_retry


@admin.register(FollowUp)
class FollowUpAdmin(ModelAdmin):
    """The follow-up queue across tenants (the admin runs with scopes disabled)."""

    list_display = ["id", "tenant", "contact", "channel", "status", "next_attempt_at", "attempts",
                    "last_error_short", "sent_at"]
    list_filter = ["status", "tenant", "channel", "respect_working_hours"]
    search_fields = ["idempotency_key", "user_id", "contact__name", "contact__phone", "message", "text_sent"]
    date_hierarchy = "scheduled_at"
    ordering = ["next_attempt_at", "id"]
    list_select_related = ["tenant", "contact"]
    actions = ["cancel", "retry"]
    readonly_fields = ["tenant", "contact", "conversation", "channel", "user_id", "status", "attempts",
                       "next_attempt_at", "lease_expires_at", "claimed_by", "last_error", "text_sent",
                       "text_origin", "sent_at", "cancelled_at", "idempotency_key", "created_by", "created_at",
                       "updated_at", "scheduled_at", "message", "variables", "respect_working_hours"]
    fieldsets = [
        (None, {"fields": ["tenant", "contact", "conversation", "channel", "user_id", "status"]}),
        ("Message", {"fields": ["message", "variables", "text_sent", "text_origin"]}),
        ("Timing", {"fields": ["scheduled_at", "respect_working_hours", "next_attempt_at", "sent_at",
                               "cancelled_at"]}),
        ("Delivery", {"fields": ["attempts", "last_error", "lease_expires_at", "claimed_by", "idempotency_key",
                                 "created_by", "created_at", "updated_at"]}),
    ]

    def has_add_permission(self, request):
        return False  # follow-ups are scheduled through the API, which validates the recipient

    @admin.display(description="last error")
    def last_error_short(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    def _apply(self, request, queryset, service, verb):
        done, refused = 0, []
        for followup in queryset.select_related("tenant"):
            try:
                service(followup=followup)
                done += 1
            except ApiError as exc:
                refused.append(f"#{followup.pk}: {exc.message}")
        if done:
            messages.success(request, f"{verb} {done} follow-up(s).")
        for line in refused:
            messages.warning(request, line)

    @admin.action(description="Cancel selected pending follow-ups", permissions=["change"])
    def cancel(self, request, queryset):
        self._apply(request, queryset, followup_cancel, "Cancelled")

    @admin.action(description="Retry selected follow-ups now", permissions=["change"])
    def retry(self, request, queryset):
        self._apply(request, queryset, followup_retry, "Queued again")
