"""Tools per tenant in the operator console: define a tenant's HTTP tools (headers are
write-only and shown masked), enable or disable them, choose the shipping provider (its
API key write-only too), and "try it": run a tool with sample arguments and see the
exact record the chat pipeline would store (result or error, duration)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from agent_project.admin import ModelAdmin
from agent_project.limits import unstorable_text
from agent_project.lib.llm import ToolRequest
from agent_project.lib import outbound
from agent_project.lib.encryption import mask
from tools.http_tools import template_host
from tools.models import ShippingConfig, TenantTool
from tools.registry import RESERVED_NAMES, http_tool, tool_run, tracking_tool


def _json_object(value, what: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{what} must be a JSON object.")
    return value


class TenantToolForm(forms.ModelForm):
    """Headers are write-only: leave the box empty to keep the stored ones, paste a JSON
    object to replace them all, or tick "clear"."""

    new_headers = forms.CharField(
        required=False, label="Headers", widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='A JSON object, e.g. {"Authorization": "Bearer …"}. Encrypted at rest; leave empty to keep.')
    clear_headers = forms.BooleanField(required=False, label="Clear headers")

    class Meta:
        model = TenantTool
        fields = ["tenant", "name", "description", "enabled", "intent", "method", "url_template", "parameters",
                  "response_mapping", "timeout_seconds", "allow_private_network"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.header_dict() if self.instance.pk else {}
        if stored:
            self.fields["new_headers"].help_text = ("Stored: " + ", ".join(f"{k}: {mask(v)}" for k, v in stored.items())
                                                    + ". Leave empty to keep them; a JSON object replaces them.")

    def clean_name(self):
        name = self.cleaned_data["name"]
        if name in RESERVED_NAMES:
            raise forms.ValidationError(f"{name} is a built-in tool's name.")
        return name

    def clean_url_template(self):
        value = self.cleaned_data["url_template"].strip()
        try:
            template_host(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean(self):
        cleaned = super().clean()
        url = cleaned.get("url_template")
        if url:
            try:
                outbound.url_check(url, allow_private=bool(cleaned.get("allow_private_network")))
            except outbound.OutboundError as exc:
                self.add_error("url_template", f"Not allowed ({exc.rule}): {exc.message}. Tick \"allow private "
                                               "network\" only for a shop system on the same private network.")
        return cleaned

    def clean_parameters(self):
        schema = _json_object(self.cleaned_data.get("parameters"), "The parameter schema")
        if schema and schema.get("type", "object") != "object":
            raise forms.ValidationError('The parameter schema must have "type": "object".')
        if not isinstance(schema.get("properties", {}), dict):
            raise forms.ValidationError('"properties" must be an object.')
        missing = set(schema.get("required") or []) - set(schema.get("properties") or {})
        if missing:
            raise forms.ValidationError(f"required names unknown properties: {', '.join(sorted(missing))}")
        return {"type": "object", "properties": {}, **schema}

    def clean_response_mapping(self):
        mapping = _json_object(self.cleaned_data.get("response_mapping"), "The response mapping")
        if not all(isinstance(v, str) and v for v in mapping.values()):
            raise forms.ValidationError('Each mapped field is a dotted path string, e.g. "data.status".')
        return mapping

    def clean_timeout_seconds(self):
        value = self.cleaned_data["timeout_seconds"]
        if not 0.5 <= value <= 30:
            raise forms.ValidationError("Between 0.5 and 30 seconds.")
        return value

    def clean_new_headers(self):
        raw = self.cleaned_data.get("new_headers", "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("Headers must be a JSON object.") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("Headers must be a JSON object of strings.")
        return value

    def save(self, commit=True):
        if self.cleaned_data.get("clear_headers"):
            self.instance.headers = ""
        elif self.cleaned_data.get("new_headers") is not None:
            self.instance.headers = json.dumps(self.cleaned_data["new_headers"])
        return super().save(commit)


def _example_arguments(schema: dict) -> dict:
    sample = {"string": "INV-1001", "integer": 1, "number": 1, "boolean": True}
    return {name: sample.get((spec or {}).get("type", "string"), "") for name, spec in
            (schema.get("properties") or {}).items()}


class TryItMixin:
    """A "try it" page per row: sample arguments in, the stored-call record out."""

    try_template = "admin/tools/try_it.html"

    def build_tool(self, obj):
        raise NotImplementedError

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [path("<int:pk>/try/", self.admin_site.admin_view(self.try_view), name="{}_{}_try".format(*info))] + \
            super().get_urls()

    @admin.display(description="try it")
    def try_link(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        info = self.model._meta.app_label, self.model._meta.model_name
        return format_html('<a class="button" href="{}">Try it</a>', reverse("admin:{}_{}_try".format(*info), args=[obj.pk]))

    def try_view(self, request, pk: int):
        obj = get_object_or_404(self.model.objects.select_related("tenant"), pk=pk)
        if not self.has_change_permission(request, obj):
            return TemplateResponse(request, self.try_template, status=403,
                                    context={**self.admin_site.each_context(request), "forbidden": True,
                                             "opts": self.model._meta})
        tool = self.build_tool(obj)
        arguments_text = json.dumps(_example_arguments(tool.parameters), ensure_ascii=False, indent=2)
        record, error = None, ""
        if request.method == "POST":
            arguments_text = request.POST.get("arguments", "")
            try:
                arguments = json.loads(arguments_text or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                error = "The sample arguments must be a JSON object."
            elif unstorable_text(arguments) is not None:
                error = "The sample arguments may not contain NUL characters or unpaired surrogates."
            else:
                record = tool_run(tool=tool, request=ToolRequest(id="try-it", name=tool.name, arguments=arguments))
        context = {
            **self.admin_site.each_context(request), "title": f"Try {tool.name} ({obj.tenant_id})", "obj": obj,
            "tool": tool, "schema": json.dumps(tool.parameters, ensure_ascii=False, indent=2),
            "arguments": arguments_text, "record": record, "error": error, "opts": self.model._meta,
            "record_json": json.dumps(record, ensure_ascii=False, indent=2, default=str) if record else "",
        }
        return TemplateResponse(request, self.try_template, context)


@admin.register(TenantTool)
class TenantToolAdmin(TryItMixin, ModelAdmin):
    form = TenantToolForm
    list_display = ["name", "tenant", "enabled", "method", "host", "intent", "allow_private_network", "try_link",
                    "updated_at"]
    list_filter = ["tenant", "enabled", "intent"]
    search_fields = ["name", "description", "tenant__id", "url_template"]
    actions = ["enable", "disable"]
    readonly_fields = ["try_link", "created_at", "updated_at"]

    def build_tool(self, obj):
        return http_tool(obj)

    @admin.display(description="host")
    def host(self, obj):
        try:
            return template_host(obj.url_template)
        except ValueError:
            return "(invalid URL)"

    @admin.action(description="Enable the selected tools", permissions=["change"])
    def enable(self, request, queryset):
        messages.success(request, f"{queryset.update(enabled=True)} tool(s) enabled.")

    @admin.action(description="Disable the selected tools", permissions=["change"])
    def disable(self, request, queryset):
        messages.success(request, f"{queryset.update(enabled=False)} tool(s) disabled.")


class ShippingConfigForm(forms.ModelForm):
    api_key = forms.CharField(required=False, strip=True, label="API key",
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    clear_api_key = forms.BooleanField(required=False, label="Clear the API key")

    class Meta:
        model = ShippingConfig
        fields = ["tenant", "provider", "api_key", "default_courier", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.api_key if self.instance.pk else ""
        self.fields["api_key"].help_text = (f"Stored: {mask(current)}. Leave empty to keep it." if current
                                            else "Not set (Biteship needs one; the mock does not).")
        self.initial["api_key"] = ""

    def clean(self):
        data = super().clean()
        if data.get("clear_api_key"):
            data["api_key"] = ""
        elif not data.get("api_key"):
            data["api_key"] = self.instance.api_key if self.instance.pk else ""
        if data.get("provider") == ShippingConfig.Provider.BITESHIP and not data.get("api_key"):
            self.add_error("api_key", "Biteship needs the shop's API key.")
        return data


@admin.register(ShippingConfig)
class ShippingConfigAdmin(TryItMixin, ModelAdmin):
    form = ShippingConfigForm
    secret_fields = ("api_key",)
    list_display = ["tenant", "provider", "key", "default_courier", "enabled", "try_link", "updated_at"]
    list_filter = ["provider", "enabled"]
    search_fields = ["tenant__id", "tenant__name"]
    actions = ["enable", "disable"]
    readonly_fields = ["try_link", "updated_at"]

    def build_tool(self, obj):
        return tracking_tool(tenant=obj.tenant, config=obj)

    @admin.display(description="API key")
    def key(self, obj):
        return mask(obj.api_key) or "—"

    @admin.action(description="Enable tracking for the selected shops", permissions=["change"])
    def enable(self, request, queryset):
        messages.success(request, f"{queryset.update(enabled=True)} enabled.")

    @admin.action(description="Disable tracking for the selected shops", permissions=["change"])
    def disable(self, request, queryset):
        messages.success(request, f"{queryset.update(enabled=False)} disabled.")

