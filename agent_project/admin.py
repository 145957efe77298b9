import json

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.constants import LOOKUP_SEP

from agent_project.audit import SECRET_FIELDS
from agent_project.lib.encryption import mask
from agent_project.lib.storable import UNSTORABLE
from agent_project.limits import unstorable_text
from agent_project.models import AuditEvent


class StorableJSONField(forms.JSONField):
    """The admin's JSON form field: refuses what PostgreSQL cannot store (Django checks its text
    fields for NUL, not JSON), and shows a refused value again with its escapes (a lone
    surrogate written out could not be sent: the page answered 500)."""

    def validate(self, value):
        super().validate(value)
        found = unstorable_text(value)
        if found is not None:
            where = f" (at {found})" if found else ""
            raise ValidationError(f"Text may not contain NUL characters or unpaired surrogates{where}, and numbers "
                                  "must be finite.")

    def prepare_value(self, value):
        text = super().prepare_value(value)
        if isinstance(text, str) and UNSTORABLE.search(text):
            return json.dumps(value, ensure_ascii=True, cls=self.encoder)
        return text


class ModelAdmin(admin.ModelAdmin):
    """The base of every model admin here.

    - An action that names no ``permissions`` needs the permission to change (Django
      offers such an action to anyone who may view the list: a view-only user could
      issue API keys or delete documents). Every action here names its own anyway.
    - An action posted with a selected id that cannot be one of the model's keys ("abc"
      for a numeric key, a NUL character) made Django's ``response_action`` fail with a
      500; such ids now select nothing.
    - ``secret_fields`` are masked for users who may only view, and no list filters on a
      secret-named field.
    - JSON fields refuse what PostgreSQL cannot store (``StorableJSONField``).
    """

    #: Model fields holding secrets. Their forms show them write-only (empty, "Stored: ••••1234"); a user who
    #: may only view gets them masked, with their "clear_" boxes left out (Django shows a read-only field's
    #: value as it is).
    secret_fields: tuple[str, ...] = ()

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        for name in self.secret_fields:
            setattr(self, f"{name}_masked", self._masked(name))

    def _masked(self, name: str):
        def shown(obj):
            return mask(getattr(obj, name, "") or "") or "—"

        shown.short_description = self.model._meta.get_field(name).verbose_name
        return shown

    def _without_secrets(self, fields):
        kept = []
        for name in fields:
            if isinstance(name, (list, tuple)):
                inner = self._without_secrets(name)
                if inner:
                    kept.append(tuple(inner))
            elif name in self.secret_fields:
                kept.append(f"{name}_masked")
            elif not (name.startswith("clear_") and name.removeprefix("clear_") in self.secret_fields):
                kept.append(name)
        return kept

    def _shows_secrets_form(self, request, obj) -> bool:
        return self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.secret_fields or self._shows_secrets_form(request, obj):
            return fields
        return self._without_secrets(fields)

    def get_fieldsets(self, request, obj=None):
        return self.secrets_masked(request, obj, super().get_fieldsets(request, obj))

    def secrets_masked(self, request, obj, fieldsets):
        """``fieldsets`` with the secret fields masked for a user who may only view (an admin that
        builds its own fieldsets returns them through this)."""
        if not self.secret_fields or self._shows_secrets_form(request, obj):
            return fieldsets
        return [(title, {**options, "fields": self._without_secrets(options["fields"])})
                for title, options in fieldsets]

    def lookup_allowed(self, lookup, value, request=None):
        # A filter on a secret answers whether a guess is right (?webhook_secret__startswith=whsec_A: one row
        # or none), and guess by guess gives the whole secret away, to anyone who may view the list.
        if any(SECRET_FIELDS.search(part) for part in lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", StorableJSONField)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

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
        if UNSTORABLE.search(value):
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
