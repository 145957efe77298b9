from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError

from agent_project.models import AuditEvent


class ModelAdmin(admin.ModelAdmin):
    """The base of every model admin here.

    - An action that names no ``permissions`` needs the permission to change (Django
      offers such an action to anyone who may view the list: a view-only user could
      issue API keys or delete documents). Every action here names its own anyway.
    - An action posted with a selected id that cannot be one of the model's keys ("abc"
      for a numeric key, a NUL character) made Django's ``response_action`` fail with a
      500; such ids now select nothing.
    """

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not actions or self.has_change_permission(request):
            return actions
        return {name: action for name, action in actions.items() if getattr(action[0], "allowed_permissions", None)}

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        usable = [value for value in selected if self._usable_key(value)]
        if usable != selected:
            post = request.POST.copy()
            post.setlist(helpers.ACTION_CHECKBOX_NAME, usable)
            request.POST = post
        return super().response_action(request, queryset)

    def _usable_key(self, value: str) -> bool:
        if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
            return False
        try:
            self.model._meta.pk.to_python(value)
        except ValidationError:
            return False
        return True


class ReadOnlyAdmin(ModelAdmin):
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
