from django.contrib import admin

from agent_project.models import AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows an operator may read but not add, change or delete by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the trail is written by ``audit_record`` and never edited by hand."""

    list_display = ["created_at", "tenant_id", "actor", "source", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["source", "action", "object_type", "tenant_id"]
    search_fields = ["tenant_id", "actor", "object_id", "object_repr", "request_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_select_related = ["actor_user"]
