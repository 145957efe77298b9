from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from agent_project.admin import ModelAdmin
from agent_project.lib.encryption import mask
from tenants import hours
from tenants.models import ApiKey, Tenant, _webhook_secret
from agent_project.errors import ApiError
from tenants.services import (RATE_LIMIT_FIELDS, api_key_create, api_key_revoke, api_key_rotate, synonyms_normalize,
                              webhook_url_check)


def _day_field(day: str) -> forms.CharField:
    return forms.CharField(
        label=day.capitalize(), required=False,
        help_text="e.g. 09:00-12:00, 13:00-17:00 (empty = closed)" if day == "mon" else "",
    )


class TenantFormBase(forms.ModelForm):
    """Working hours as one text field per weekday ("09:00-12:00, 13:00-17:00"), holidays one per line."""

    webhook_url = forms.URLField(required=False, assume_scheme="https", max_length=200,
                                 help_text="Where follow-ups and events are POSTed (signed).")
    holidays_text = forms.CharField(
        label="Holidays / closed dates", required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 40}),
        help_text="One per line: 2026-12-25 Natal",
    )

    synonyms_text = forms.CharField(
        label="Synonyms", required=False, widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text="One group per line, words this business and its customers use for the same thing: "
                  "kulkas refrigerator fridge. A customer's word the knowledge base never uses is searched as the "
                  "words of its group it does use.",
    )

    webhook_secret = forms.CharField(
        label="Webhook secret", required=False, strip=True, min_length=16, max_length=128,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))

    class Meta:
        model = Tenant
        fields = ["id", "name", "is_active", "persona", "sop", "locale", "timezone", "webhook_url", "webhook_secret",
                  "rate_limit_per_minute", "chat_rate_limit_per_minute", "upload_rate_limit_per_minute",
                  "handoff_on_unanswered", "handoff_resume_minutes"]
        widgets = {
            "persona": forms.Textarea(attrs={"rows": 10, "cols": 100}),
            "sop": forms.Textarea(attrs={"rows": 18, "cols": 100}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.working_hours or {}
        for day in hours.WEEKDAYS:
            self.initial.setdefault(f"hours_{day}", hours.format_day(current.get(day, [])))
        self.initial["holidays_text"] = "\n".join(
            f"{h['date']} {h.get('name', '')}".strip() for h in self.instance.holidays or []
        )
        self.initial["synonyms_text"] = "\n".join(self.instance.synonyms or [])
        # Write-only, as in the API: the page never holds the secret itself.
        current = self.instance.webhook_secret or ""
        self.fields["webhook_secret"].help_text = (
            f"Stored: {mask(current)}. Leave empty to keep it; a new one has 16 to 128 characters."
            if current else "Not set: leave empty for a generated one, or type 16 to 128 characters.")
        self.initial["webhook_secret"] = ""

    def clean_webhook_url(self):
        url = self.cleaned_data.get("webhook_url") or ""
        try:
            webhook_url_check(url)
        except ApiError as exc:
            raise forms.ValidationError(exc.message) from None
        return url

    def clean_webhook_secret(self):
        return self.cleaned_data.get("webhook_secret") or self.instance.webhook_secret or _webhook_secret()

    def clean_timezone(self):
        try:
            hours.get_zone(self.cleaned_data["timezone"])
        except hours.HoursError as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data["timezone"]

    def clean(self):
        cleaned = super().clean()
        raw = {day: cleaned.get(f"hours_{day}", "") for day in hours.WEEKDAYS}
        try:
            cleaned["working_hours"] = hours.normalize_working_hours({d: v for d, v in raw.items() if v.strip()})
        except hours.HoursError as exc:
            raise forms.ValidationError(str(exc)) from None
        lines = [ln.split(None, 1) for ln in cleaned.get("holidays_text", "").splitlines() if ln.strip()]
        try:
            cleaned["holidays"] = hours.normalize_holidays(
                [{"date": parts[0], "name": parts[1] if len(parts) > 1 else ""} for parts in lines]
            )
        except hours.HoursError as exc:
            raise forms.ValidationError(str(exc)) from None
        try:
            cleaned["synonyms"] = synonyms_normalize(cleaned.get("synonyms_text", ""))
        except ValueError as exc:
            self.add_error("synonyms_text", str(exc))
        return cleaned

    def save(self, commit=True):
        self.instance.working_hours = self.cleaned_data["working_hours"]
        self.instance.holidays = self.cleaned_data["holidays"]
        self.instance.synonyms = self.cleaned_data["synonyms"]
        return super().save(commit)


# The weekday fields are declared on the class (the admin only accepts declared form fields).
TenantForm = type("TenantForm", (TenantFormBase,), {f"hours_{d}": _day_field(d) for d in hours.WEEKDAYS})


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "name", "state_label", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["prefix", "state_label", "created_at", "last_used_at", "revoked_at"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by the "Issue a new API key" action, which shows the key once

    @admin.display(description="state")
    def state_label(self, obj):
        return obj.state()


def _show_key_once(request, tenant, plaintext):
    messages.warning(
        request,
        format_html("New API key for <b>{}</b>: <code>{}</code> — copy it now, it will not be shown again.",
                    tenant.id, plaintext),
    )


@admin.register(Tenant)
class TenantAdmin(ModelAdmin):
    form = TenantForm
    secret_fields = ("webhook_secret",)
    list_display = ["id", "name", "locale", "timezone", "is_active", "open_now", "updated_at"]
    list_filter = ["is_active", "locale"]
    search_fields = ["id", "name"]
    inlines = [ApiKeyInline]
    actions = ["issue_api_key"]

    def get_fieldsets(self, request, obj=None):
        return self.secrets_masked(request, obj, [
            (None, {"fields": ["id", "name", "is_active", "locale", "timezone"]}),
            ("Voice and procedures", {"fields": ["persona", "sop"]}),
            ("Working hours", {"fields": [f"hours_{d}" for d in hours.WEEKDAYS] + ["holidays_text"]}),
            ("Human handoff", {"fields": ["handoff_on_unanswered", "handoff_resume_minutes"]}),
            ("Knowledge search", {"fields": ["synonyms_text"]}),
            ("Integrations and limits", {"fields": ["webhook_url", "webhook_secret", "rate_limit_per_minute",
                                                    "chat_rate_limit_per_minute", "upload_rate_limit_per_minute"]}),
        ])

    def get_readonly_fields(self, request, obj=None):
        # Rate limits are the installation's: another tenant's throughput depends on them.
        limits = [] if request.user.is_superuser else list(RATE_LIMIT_FIELDS)
        return (["id"] if obj else []) + limits

    @admin.display(description="open now")
    def open_now(self, obj):
        status = hours.opening_status(working_hours=obj.working_hours, holidays=obj.holidays,
                                      timezone=obj.timezone, at=timezone.now())
        return "24/7" if status.always_open else ("open" if status.is_open else "closed")

    def get_deleted_objects(self, objs, request):
        """What deleting tenants removes, counted per kind of record instead of listed one by one:
        a tenant's knowledge base alone can hold 100,000 chunks, and the read-only admins of derived
        rows (chunks) made Django refuse the page to everyone. Deleting needs the permission to
        delete tenants; everything a tenant owns goes with it (the files of its documents too)."""
        objs = list(objs)
        if not self.has_delete_permission(request):
            return [], {}, {Tenant._meta.verbose_name}, []
        counts = {Tenant._meta.verbose_name_plural: len(objs)}
        relations = [f for f in Tenant._meta.get_fields(include_hidden=True)
                     if f.auto_created and not f.concrete and (f.one_to_many or f.one_to_one)]
        for relation in relations:  # hidden ones too (related_name="+": chunks, terms, statistics)
            model = relation.related_model
            found = model._base_manager.filter(**{f"{relation.field.name}__in": objs}).count()
            if found:
                name = model._meta.verbose_name_plural
                counts[name] = counts.get(name, 0) + found
        listed = [format_html("{}: {}", Tenant._meta.verbose_name.capitalize(), obj) for obj in objs]
        return listed, counts, set(), []

    @admin.action(description="Issue a new API key", permissions=["change"])
    def issue_api_key(self, request, queryset):
        for tenant in queryset:
            _, plaintext = api_key_create(tenant=tenant, name=f"admin {timezone.now():%Y-%m-%d}")
            _show_key_once(request, tenant, plaintext)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            _, plaintext = api_key_create(tenant=obj, name="primary")
            _show_key_once(request, obj, plaintext)


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    list_display = ["prefix", "tenant", "name", "state_label", "created_at", "last_used_at", "expires_at"]
    list_filter = ["tenant"]
    search_fields = ["prefix", "name", "tenant__id"]
    fields = ["tenant", "prefix", "name", "expires_at", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["tenant", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["rotate", "rotate_now", "revoke"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="state")
    def state_label(self, obj):
        return obj.state()

    @admin.action(description="Rotate: issue a successor, old key keeps working for 24 hours", permissions=["change"])
    def rotate(self, request, queryset):
        for key in queryset:
            _, plaintext = api_key_rotate(api_key=key)
            _show_key_once(request, key.tenant, plaintext)

    @admin.action(description="Rotate now: issue a successor and revoke the old key at once", permissions=["change"])
    def rotate_now(self, request, queryset):
        for key in queryset:
            _, plaintext = api_key_rotate(api_key=key, grace=timezone.timedelta(0))
            _show_key_once(request, key.tenant, plaintext)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for key in queryset:
            if not key.revoked_at:
                api_key_revoke(api_key=key)
                revoked += 1
        already = queryset.count() - revoked
        messages.success(request, f"Revoked {revoked} key(s)." + (f" {already} were revoked already." if already else ""))
