"""Operator console for the knowledge base: documents with status, counts and
errors; upload from the admin; a document's chunks; re-process and delete
actions that go through the services (so BM25 statistics stay right); and a
search page that runs ``chunk_search`` for a tenant, to see what the agent would
retrieve. The admin runs with scopes disabled; the services and the search open
the tenant's scope themselves."""

from __future__ import annotations

from dataclasses import asdict

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from agent_project.admin import ModelAdmin, ReadOnlyAdmin
from agent_project.errors import ApiError
from knowledge import selectors
from knowledge.api import comma_tags
from knowledge.ingestion.parsers import SUPPORTED_TYPES, DocumentError, ParseTimeout, parse_file, preflight
from knowledge.models import Chunk, Document
from knowledge.services.files import document_upload
from knowledge.services.processing import document_delete, document_reprocess
from tenants.models import Tenant
from tenants.scoping import tenant_scope

ADMIN_CHUNKS_SHOWN = 50


class DocumentUploadForm(forms.ModelForm):
    upload = forms.FileField(label="File", help_text="Supported: " + ", ".join("." + t for t in SUPPORTED_TYPES))
    tags_text = forms.CharField(label="Tags", required=False, help_text="Comma-separated.")

    class Meta:
        model = Document
        fields = ["tenant", "title"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        data = upload.read()
        # A bad file is a form error, not a half-stored document; a big one (processed by a worker) gets the
        # quick checks only, as through the API, and so does one too slow to read within the request's
        # budget (the upload then queues it, as the API does).
        try:
            if len(data) > settings.KB_SYNC_MAX_BYTES:
                preflight(data, upload.name)
            else:
                parse_file(data, upload.name, max_seconds=settings.KB_SYNC_PARSE_SECONDS)
        except ParseTimeout:
            pass
        except DocumentError as exc:
            raise forms.ValidationError(exc.message) from None
        upload.seek(0)
        return upload

    def clean_tags_text(self):
        try:  # the API's rules
            return comma_tags(self.cleaned_data.get("tags_text", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class SearchForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    query = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 80}))
    k = forms.IntegerField(min_value=1, max_value=selectors.MAX_K, initial=5)


@admin.register(Document)
class DocumentAdmin(ModelAdmin):
    list_display = ["title", "tenant", "status", "chunk_count", "file_type", "source_kind", "short_error", "updated_at"]
    list_filter = ["status", "file_type", "source_kind", "tenant"]
    search_fields = ["title", "original_name", "external_id"]
    readonly_fields = ["tenant", "source_kind", "file_type", "original_name", "checksum", "status", "error",
                       "chunk_count", "external_id", "created_at", "updated_at", "processed_at", "chunk_list"]
    fields = ["tenant", "title", "tags", "metadata", "status", "error", "chunk_count", "source_kind", "file_type",
              "original_name", "external_id", "checksum", "created_at", "updated_at", "processed_at", "chunk_list"]
    actions = ["reprocess", "delete_with_chunks"]
    change_list_template = "admin/knowledge/document_change_list.html"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["tenant", "upload", "title", "tags_text"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting must also update the term statistics
        return actions

    @admin.display(description="error")
    def short_error(self, obj):
        return Truncator(obj.error).chars(80)

    @admin.display(description=f"chunks (first {ADMIN_CHUNKS_SHOWN})")
    def chunk_list(self, obj):
        chunks = Chunk.objects.filter(tenant_id=obj.tenant_id, document=obj).order_by("position").only(
            "position", "text", "provenance", "token_count", "embedding_model")[:ADMIN_CHUNKS_SHOWN]
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            ((c.position, Truncator(c.text).chars(400), c.provenance, c.token_count) for c in chunks),
        )
        every = format_html('<p><a href="{}?tenant__id__exact={}&amp;document={}">All {} chunks, with their full text and '
                            'search terms</a></p>', reverse("admin:knowledge_chunk_changelist"), obj.tenant_id,
                            obj.pk, obj.chunk_count)
        return format_html("{}<table><tr><th>#</th><th>text</th><th>provenance</th><th>terms</th></tr>{}</table>",
                           every, rows)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        upload = form.cleaned_data["upload"]
        tags = form.cleaned_data.get("tags_text") or []
        with tenant_scope(obj.tenant):
            result = document_upload(tenant=obj.tenant, filename=upload.name, data=upload.read(),
                                     title=obj.title, tags=tags)
        obj.pk = result.document.pk
        obj.refresh_from_db()
        request.kb_upload_outcome = result.outcome
        if result.outcome == "duplicate":
            messages.warning(request, f"Identical content is already stored as “{obj.title}”: nothing new was "
                                      "added. Here it is.")
        else:
            messages.info(request, {"created": "Processed.", "queued": "Queued: a worker will process it."}
                          [result.outcome])

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except ApiError as exc:
            # The embedding provider is down (503) or the upload broke a limit checked at store time: the
            # add view's transaction has rolled back, so nothing is stored; say why instead of a 500 page.
            messages.error(request, f"Nothing was stored: {exc.message}")
            return HttpResponseRedirect(request.get_full_path())

    def log_addition(self, request, obj, message):
        if getattr(request, "kb_upload_outcome", None) == "duplicate":
            return None  # nothing was added: the document shown was stored before
        return super().log_addition(request, obj, message)

    def get_deleted_objects(self, objs, request):
        """The delete page of a document: its chunks go with it (``document_delete``, which also updates
        the search statistics), so they are counted, not listed one by one, and need no permission of
        their own (the chunk admin is read-only, which refused every delete from this page)."""
        objs = list(objs)
        if not self.has_delete_permission(request):
            return [], {}, {Document._meta.verbose_name}, []
        listed = [format_html("{}: {}", Document._meta.verbose_name.capitalize(), obj) for obj in objs]
        counts = {Document._meta.verbose_name_plural: len(objs),
                  Chunk._meta.verbose_name_plural: sum(obj.chunk_count for obj in objs)}
        return listed, counts, set(), []

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "kb_upload_outcome", None) == "duplicate":
            # Not Django's "was added successfully": nothing was; show the document already stored.
            return HttpResponseRedirect(reverse("admin:knowledge_document_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def delete_model(self, request, obj):
        document_delete(document=obj)

    def delete_queryset(self, request, queryset):
        for document in queryset:
            document_delete(document=document)

    @admin.action(description="Re-process (parse and embed again)", permissions=["change"])
    def reprocess(self, request, queryset):
        for document in queryset:
            document_reprocess(document=document)
        messages.success(request, f"Queued {queryset.count()} document(s) for processing.")

    @admin.action(description="Delete with their chunks", permissions=["delete"])
    def delete_with_chunks(self, request, queryset):
        count = queryset.count()
        self.delete_queryset(request, queryset)
        messages.success(request, f"Deleted {count} document(s).")

    def get_urls(self):
        return [path("search/", self.admin_site.admin_view(self.search_view), name="knowledge_document_search"),
                *super().get_urls()]

    def search_view(self, request):
        if not self.has_view_permission(request):  # admin_view checked is_staff only
            raise PermissionDenied
        form = SearchForm(request.GET or None)
        hits = None
        if form.is_valid():
            tenant = form.cleaned_data["tenant"]
            with tenant_scope(tenant):
                hits = [asdict(h) | {"relevant": h.score >= selectors.RELEVANCE_THRESHOLD}
                        for h in selectors.chunk_search(tenant=tenant, query=form.cleaned_data["query"],
                                                        k=form.cleaned_data["k"])]
        context = {**self.admin_site.each_context(request), "title": "Search the knowledge base", "form": form,
                   "hits": hits, "threshold": selectors.RELEVANCE_THRESHOLD, "opts": self.model._meta}
        return TemplateResponse(request, "admin/knowledge/search.html", context)


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    """Every chunk of a document, read-only: chunks change only through their document
    (upload, re-process, delete), which keeps the search statistics right. Opened from a
    document's page, filtered by its tenant and id (the tenant b-tree serves the list)."""

    list_display = ["chunk", "document", "excerpt", "provenance", "token_count", "embedding_model"]
    list_filter = ["tenant"]
    search_fields = ["text"]
    list_select_related = ["document"]
    list_per_page = 50
    show_full_result_count = False  # a count of the whole table on every page of a big knowledge base
    fields = ["tenant", "document", "position", "text", "provenance", "token_count", "search_text", "embedding_model"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding")

    @admin.display(description="#", ordering="position")
    def chunk(self, obj):
        return obj.position

    @admin.display(description="text")
    def excerpt(self, obj):
        return Truncator(obj.text).chars(300)
