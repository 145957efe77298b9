"""Operator console for contacts: search, history inline, merge (with a confirmation
page), CSV export, and erasure that is recorded like the API's. The admin runs with
scopes disabled (tenants.scoping.AdminScopesMiddleware), so it filters by tenant itself."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django_scopes import scopes_disabled

from agent_project.admin import ModelAdmin
from agent_project.errors import ApiError
from contacts import selectors
from contacts.models import Contact, ContactDeletion, ContactIdentity, ContactLog, ContactMerge
from contacts.normalize import InvalidValue, email_normalize, phone_normalize, region_for_locale
from contacts.services.erasure import contact_delete
from contacts.services.merge import contact_merge

HISTORY_INLINE_ROWS = 100  # a contact may have thousands of lines; the full history is one link away


class ContactForm(forms.ModelForm):
    """Phone and e-mail are normalised as the API does, with the tenant's default region."""

    class Meta:
        model = Contact
        fields = ["tenant", "name", "phone", "email", "tags", "attributes", "opted_out"]

    def clean_tags(self):
        """As the API: a list of at most 100 strings of at most 64 characters (the list page and a
        merge rely on the shape)."""
        tags = self.cleaned_data.get("tags")
        if tags in (None, ""):
            return []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise forms.ValidationError('A JSON list of strings, e.g. ["vip", "reseller"].')
        # The limits of one API request; the API adds each request's tags to the stored ones (and a merge
        # unites two contacts' tags), so a contact may hold more: an edit of other fields keeps them.
        stored = list(self.instance.tags or []) if self.instance.pk else None
        if tags != stored and (len(tags) > 100 or any(len(t) > 64 for t in tags)):
            raise forms.ValidationError("At most 100 tags of at most 64 characters each.")
        return list(dict.fromkeys(tags))

    def clean_attributes(self):
        attributes = self.cleaned_data.get("attributes")
        if attributes in (None, ""):
            return {}
        if not isinstance(attributes, dict):
            raise forms.ValidationError('A JSON object, e.g. {"city": "Bandung"}.')
        return attributes

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        region = region_for_locale(tenant.locale if tenant else None)
        for name, normalize in (("phone", lambda v: phone_normalize(v, region)), ("email", email_normalize)):
            if name not in cleaned:
                continue
            try:
                cleaned[name] = normalize(cleaned[name])
            except InvalidValue as exc:
                self.add_error(name, exc.message)
                continue
            # Django skips the (tenant, phone) constraint check when tenant is read-only on the
            # change page, so check it here; the database constraint remains the last word.
            if cleaned[name] and tenant is not None:
                other = (Contact.objects.filter(tenant=tenant, **{name: cleaned[name]})
                         .exclude(pk=self.instance.pk).values_list("pk", flat=True).first())
                if other:
                    self.add_error(name, f"Contact #{other} already has this {name}; merge the two instead.")
        return cleaned


class IdentityForm(forms.ModelForm):
    class Meta:
        model = ContactIdentity
        fields = ["channel", "external_id"]

    def clean(self):
        cleaned = super().clean()
        cleaned["channel"] = (cleaned.get("channel") or "").strip().lower()
        cleaned["external_id"] = (cleaned.get("external_id") or "").strip()
        # The (tenant, channel, external_id) constraint is not checked by the inline (tenant is
        # not one of its fields): check it here instead of answering a 500.
        contact = getattr(self.instance, "contact", None)
        if contact is not None and contact.tenant_id and cleaned["channel"] and cleaned["external_id"]:
            owner = (ContactIdentity.objects.filter(tenant_id=contact.tenant_id, channel=cleaned["channel"],
                                                    external_id=cleaned["external_id"])
                     .exclude(pk=self.instance.pk).values_list("contact_id", flat=True).first())
            if owner:
                raise forms.ValidationError(f"This {cleaned['channel']} id belongs to contact #{owner}; "
                                            "merge the two instead.")
        return cleaned


class IdentityFormSet(forms.BaseInlineFormSet):
    def clean(self):
        """Two rows of one save naming the same id (after normalising) would break the
        (tenant, channel, external_id) constraint: each form checks only the stored rows."""
        super().clean()
        seen = set()
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE") or not data.get("channel") or not data.get("external_id"):
                continue
            key = (data["channel"], data["external_id"])
            if key in seen:
                raise forms.ValidationError(f"The {key[0]} id {key[1]} is given twice.")
            seen.add(key)


class IdentityInline(admin.TabularInline):
    model = ContactIdentity
    form = IdentityForm
    formset = IdentityFormSet
    extra = 0
    fields = ["channel", "external_id", "created_at"]
    readonly_fields = ["created_at"]


class LogInline(admin.TabularInline):
    """The newest lines of the history, read-only."""

    model = ContactLog
    extra = 0
    can_delete = False
    fields = ["at", "role", "channel", "content", "external_message_id", "conversation_id"]
    readonly_fields = fields
    ordering = ["-at", "-id"]
    verbose_name_plural = f"history (newest {HISTORY_INLINE_ROWS})"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        object_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
        if object_id and str(object_id).isdigit():
            # A sliced queryset cannot be filtered by the formset, so limit by a subquery of ids.
            newest = (ContactLog.objects.filter(contact_id=int(object_id)).order_by("-at", "-id")
                      .values("pk")[:HISTORY_INLINE_ROWS])
            qs = qs.filter(pk__in=newest)
        return qs


@admin.register(Contact)
class ContactAdmin(ModelAdmin):
    form = ContactForm
    list_display = ["__str__", "tenant", "phone", "email", "tag_list", "opted_out", "last_seen_at"]
    list_filter = ["tenant", "opted_out"]
    search_fields = ["name", "phone", "email", "identities__external_id"]
    readonly_fields = ["first_seen_at", "last_seen_at", "created_at", "updated_at", "history_link"]
    inlines = [IdentityInline, LogInline]
    actions = ["merge_contacts", "export_csv"]
    list_select_related = ["tenant"]

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        digits = "".join(ch for ch in search_term if ch.isdigit())
        if len(digits) >= 3:
            # "0812-3456" finds +6281234567890 (stored E.164): compare digits without a national 0.
            # OR-ed onto the same (already list-filtered) queryset, so filters still hold.
            found |= queryset.filter(phone__contains=digits.lstrip("0") or digits)
        return found, may_have_duplicates

    def get_readonly_fields(self, request, obj=None):
        # Moving a contact to another tenant would carry its history across tenants.
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    @admin.display(description="tags")
    def tag_list(self, obj):
        return ", ".join(str(t) for t in obj.tags or [])

    @admin.display(description="full history")
    def history_link(self, obj):
        if not obj.pk:
            return "-"
        url = reverse("admin:contacts_contactlog_changelist") + f"?contact__id__exact={obj.pk}"
        return format_html('<a href="{}">All {} lines</a>', url, obj.logs.count())

    def save_formset(self, request, form, formset, change):
        # New identities belong to the contact's tenant.
        for instance in formset.save(commit=False):
            instance.tenant_id = form.instance.tenant_id
            instance.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()

    # Erasure goes through the service, so it is recorded exactly as through the API.
    def delete_model(self, request, obj):
        contact_delete(contact=obj, actor=f"admin:{request.user.get_username()}", reason="admin")

    def delete_queryset(self, request, queryset):
        for contact in queryset:
            contact_delete(contact=contact, actor=f"admin:{request.user.get_username()}", reason="admin")

    def has_merge_permission(self, request):
        """A merge changes the contact kept and deletes the others: both permissions (Django's
        ``permissions=[...]`` asks for any one of those it names)."""
        return self.has_change_permission(request) and self.has_delete_permission(request)

    @admin.action(description="Merge selected contacts into one…", permissions=["merge"])
    def merge_contacts(self, request, queryset):
        contacts = list(queryset.select_related("tenant").order_by("id"))
        if len(contacts) < 2:
            self.message_user(request, "Select at least two contacts to merge.", messages.WARNING)
            return None
        if len({c.tenant_id for c in contacts}) > 1:
            self.message_user(request, "Contacts of different tenants cannot be merged.", messages.ERROR)
            return None
        if request.POST.get("confirm") == "yes":
            target = next((c for c in contacts if str(c.pk) == request.POST.get("target")), None)
            if target is None:
                self.message_user(request, "Choose the contact to keep.", messages.ERROR)
                return None
            actor = f"admin:{request.user.get_username()}"
            moved = 0
            try:
                for source in contacts:
                    if source.pk != target.pk:
                        merge = contact_merge(target=target, source=source, actor=actor)
                        moved += sum(merge.moved.values())
            except ApiError as exc:
                self.message_user(request, f"Merge stopped: {exc.message}", messages.ERROR)
                return None
            self.message_user(request, f"Merged {len(contacts) - 1} contact(s) into “{target}”; {moved} row(s) moved.",
                              messages.SUCCESS)
            return None
        rows = [{"contact": c, "counts": selectors.contact_counts(contact=c),
                 "identities": ", ".join(f"{i.channel}:{i.external_id}" for i in c.identities.all())}
                for c in contacts]
        context = {
            **self.admin_site.each_context(request),
            "title": "Merge contacts",
            "opts": self.model._meta,
            "rows": rows,
            "default_target": max(contacts, key=lambda c: (c.logs.count(), -c.pk)).pk,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/contacts/contact/merge_confirmation.html", context)

    @admin.action(description="Export selected contacts as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        def lines():
            # Streamed after the admin's scopes_disabled() block has closed: disable them again.
            with scopes_disabled():
                yield from selectors.contact_csv_lines(queryset.order_by("tenant_id", "id"))

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="contacts-{timezone.now():%Y%m%d-%H%M}.csv"'
        return response


@admin.register(ContactLog)
class ContactLogAdmin(ModelAdmin):
    list_display = ["at", "contact", "role", "channel", "short_content", "tenant"]
    list_filter = ["tenant", "channel", "role"]
    search_fields = ["content", "external_message_id"]
    raw_id_fields = ["contact"]
    list_select_related = ["contact", "tenant"]
    show_full_result_count = False  # counting a million-row history on every page is not worth it
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:120]


@admin.register(ContactDeletion)
class ContactDeletionAdmin(ModelAdmin):
    list_display = ["deleted_at", "tenant", "contact_id", "actor", "reason", "removed"]
    list_filter = ["tenant"]
    search_fields = ["contact_id", "actor", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the record is the proof; it holds no personal data to erase


@admin.register(ContactMerge)
class ContactMergeAdmin(ModelAdmin):
    list_display = ["merged_at", "tenant", "target_contact_id", "source_contact_id", "moved", "actor"]
    list_filter = ["tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

