"""The audit trail's recorders: every successful state-changing API request and admin change.

:class:`AuditMiddleware` records every successful state-changing API request (keyed on
route + method + response: ``POST`` answered 201 is a create, ``PUT``/``PATCH`` an update,
``DELETE`` a delete, any other ``POST`` an action named by the route's last word) and every
successful admin change (from the admin's own ``LogEntry`` rows written in that request,
plus admin actions such as "rotate" on the selected objects), and the API keys issued or
revoked on the way. It knows the API's callers and the tenants' keys, so it lives here; the
writer, ``agent_project.audit.audit_record``, and the table are in the base.
"""

from __future__ import annotations

import json
import logging
import re
import time

from django.conf import settings

from agent_project.audit import audit_record
from agent_project.models import AuditEvent
from agent_project.requestlog import route_of
from tenants.auth import ApiClient
from tenants.models import ApiKey, Tenant

logger = logging.getLogger(__name__)


_ID_KWARGS = ("pk", "id", "object_id", "document_id", "contact_id", "followup_id", "conversation_id", "tenant_id")

#: What a route changes, by URL name: (object type as ``app_label.model``, the URL kwarg
#: holding its id, or None when the id comes from the response). Routes not listed are
#: recorded under their path words (``kb/documents``), which stays readable.
ROUTE_OBJECTS = {
    "tenant-settings": ("tenants.tenant", "tenant_id"),
    "kb-upsert": ("knowledge.document", None),
    "kb-upload": ("knowledge.document", None),
    "kb-document": ("knowledge.document", "pk"),
    "contacts": ("contacts.contact", None),
    "contact-detail": ("contacts.contact", "pk"),
    "contact-merge": ("contacts.contact", "pk"),
    "contact-logs": ("contacts.contactlog", None),
    "followup-schedule": ("followups.followup", None),
    "followup-cancel": ("followups.followup", "pk"),
    "followup-retry": ("followups.followup", "pk"),
    "message-feedback": ("conversations.message", "mid"),
    "conversation-reply": ("conversations.conversation", "pk"),
    "conversation-handoff": ("conversations.conversation", "pk"),
}


def _route_object_type(route: str) -> str:
    """``kb/documents/{pk}/reindex`` -> ``kb/documents``: the literal words before the id."""
    words = []
    for part in route.split("/"):
        if part.startswith("{"):
            break
        words.append(part)
    return "/".join(words) or route


def _json_of(response) -> dict | None:
    if getattr(response, "streaming", False) or not response.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        data = json.loads(response.content or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def api_action(method: str, status: int, route: str) -> str:
    """The audit verb of a successful API request."""
    if method == "DELETE":
        return "delete"
    if method in ("PUT", "PATCH"):
        return "create" if status == 201 else "update"
    if status in (201, 202):  # 202: accepted for processing (a queued upload)
        return "create"
    # An action on one object ("followup/{pk}/cancel") is named by its last word; a POST
    # to a collection that answered 200 updated something that already existed.
    head, _, last = route.rstrip("/").rpartition("/")
    return last if "{" in head and not last.startswith("{") else "update"


class AuditMiddleware:
    """Records successful changes made through the API and the admin (see module doc)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.skip = re.compile(settings.AUDIT_SKIP_PATHS_REGEX) if settings.AUDIT_SKIP_PATHS_REGEX else None

    def __call__(self, request):
        if request.method in ("GET", "HEAD", "OPTIONS") or (self.skip and self.skip.search(request.path)):
            return self.get_response(request)
        request._audit_started = time.time()
        request._audit_body = self._body_fields(request)
        response = self.get_response(request)
        try:
            if request.path.startswith("/admin"):
                self.record_admin(request, response)
            else:
                self.record_api(request, response)
        except Exception:  # the change itself succeeded; a failed audit write must not turn it into an error
            logger.exception("Audit record failed for %s %s", request.method, request.path)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Admin actions and deletions: learn the objects' tenants while they still exist.
        if request.method == "POST" and request.path.startswith("/admin"):
            request._audit_tenants = self._admin_tenants(request, view_kwargs)
        return None

    @staticmethod
    def _body_fields(request) -> dict:
        if "json" not in request.META.get("CONTENT_TYPE", "") or request.path.startswith("/admin"):
            return {}
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):
            return {}
        return body if isinstance(body, dict) else {}

    def record_api(self, request, response):
        client = getattr(request, "user", None)
        if not isinstance(client, ApiClient) or not 200 <= response.status_code < 300:
            return
        match = request.resolver_match
        route = route_of(request)
        body = _json_of(response) or {}
        kwargs = match.kwargs if match else {}
        object_type, id_kwarg = ROUTE_OBJECTS.get(match.url_name if match else None, (None, None))
        if id_kwarg:
            object_ids = [kwargs.get(id_kwarg)]
        else:
            object_ids = [next((kwargs[k] for k in _ID_KWARGS if kwargs.get(k)), None) or body.get("id")]
            if object_ids == [None] and isinstance(body.get("results"), list):  # a batch (kb/upsert of many)
                object_ids = [row.get("id") for row in body["results"] if isinstance(row, dict)] or [None]
        tenant_id = client.tenant_id or kwargs.get("tenant_id") or request.META.get("HTTP_X_TENANT_ID", "") \
            or request._audit_body.get("tenant_id", "")
        action = api_action(request.method, response.status_code, route)
        for object_id in object_ids:
            audit_record(actor=client.label, source=AuditEvent.SOURCE_API, action=action,
                         obj=(object_type or _route_object_type(route), object_id), tenant=tenant_id,
                         changes=request._audit_body)
        self.record_key_changes(request, client.label, {tenant_id} if tenant_id else set(),
                                source=AuditEvent.SOURCE_API)

    @staticmethod
    def record_key_changes(request, actor, tenant_ids: set[str], source: str | None = None) -> None:
        """Keys issued or revoked as a side effect (the settings route replacing the primary
        key, the admin's rotate/revoke actions) get entries of their own, read from the
        key table for the tenants this request touched."""
        from datetime import datetime, timezone

        from django.db.models import Q
        from django_scopes import scopes_disabled

        if not tenant_ids:
            return
        started = datetime.fromtimestamp(request._audit_started, tz=timezone.utc)
        with scopes_disabled():
            keys = ApiKey.objects.filter(Q(created_at__gte=started) | Q(revoked_at__gte=started),
                                         tenant_id__in=tenant_ids).order_by("pk")
            for key in keys:
                created = key.created_at >= started
                changes = {"name": key.name, "prefix": key.prefix}
                if key.expires_at:
                    changes["expires_at"] = key.expires_at.isoformat()
                if created:
                    audit_record(actor=actor, source=source, action="create", obj=key, tenant=key.tenant_id,
                                 changes=changes)
                if key.revoked_at and key.revoked_at >= started:
                    audit_record(actor=actor, source=source, action="revoke", obj=key, tenant=key.tenant_id,
                                 changes=changes)

    # -- admin --

    @staticmethod
    def _admin_model(request):
        match = request.resolver_match
        if not match or match.namespace != "admin" or not match.url_name:
            return None
        from django.contrib import admin

        for model in admin.site._registry:
            prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
            if match.url_name.startswith(prefix):
                return model
        return None

    def _admin_tenants(self, request, view_kwargs) -> dict[str, str]:
        model = self._admin_model(request)
        if model is None:
            return {}
        ids = list(request.POST.getlist("_selected_action"))
        if view_kwargs.get("object_id"):
            ids.append(view_kwargs["object_id"])
        return self._tenants_of(model, ids)

    @staticmethod
    def _tenants_of(model, ids) -> dict[str, str]:
        from django_scopes import scopes_disabled

        if not ids:
            return {}
        if model is Tenant:
            return {str(i): str(i) for i in ids}
        if "tenant" not in {f.name for f in model._meta.get_fields()}:
            return {}
        try:
            with scopes_disabled():
                rows = model._default_manager.filter(pk__in=ids).values_list("pk", "tenant_id")
                return {str(pk): str(tenant) for pk, tenant in rows}
        except (ValueError, TypeError):
            return {}

    def record_admin(self, request, response):
        user = getattr(request, "user", None)
        if response.status_code != 302 or user is None or not getattr(user, "is_staff", False):
            return  # the admin redirects after every successful change; 200 re-shows a form with errors
        from datetime import datetime, timezone

        from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

        started = datetime.fromtimestamp(request._audit_started, tz=timezone.utc)
        tenants = getattr(request, "_audit_tenants", {})
        verbs = {ADDITION: "create", CHANGE: "update", DELETION: "delete"}
        entries = LogEntry.objects.filter(user=user, action_time__gte=started).select_related("content_type")
        recorded = False
        touched = set(tenants.values())
        for entry in entries.order_by("pk"):
            model = entry.content_type.model_class() if entry.content_type else None
            tenant_id = tenants.get(entry.object_id) or (self._tenants_of(model, [entry.object_id]).get(
                entry.object_id) if model else None)
            audit_record(actor=user, action=verbs.get(entry.action_flag, "update"),
                         obj=(f"{entry.content_type.app_label}.{entry.content_type.model}", entry.object_id,
                              entry.object_repr),
                         tenant=tenant_id, changes={"message": entry.get_change_message()})
            recorded = True
            if tenant_id:
                touched.add(tenant_id)
        action = request.POST.get("action")
        model = self._admin_model(request)
        if not recorded and action and model is not None:
            # A custom admin action (rotate, revoke, issue a key, ...): one entry per selected object.
            for pk in request.POST.getlist("_selected_action"):
                audit_record(actor=user, action=action, obj=(model._meta.label_lower, pk),
                             tenant=tenants.get(str(pk)), changes={"admin_action": action})
        self.record_key_changes(request, user, touched)
