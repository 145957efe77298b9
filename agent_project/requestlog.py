"""One JSON log line per request, a request id on every response, and masking.

The request id comes from ``X-Request-Id`` when the caller (or a proxy) sent a
sane one, otherwise it is generated; it is returned in ``X-Request-Id`` and put
on every log record made while the request runs (``request_id``), so a line in
a worker's log can be matched to the request that caused it.

Nothing that identifies a customer is logged in full: API keys appear as their
lookup prefix, e-mail addresses and phone numbers in paths and messages are
masked by :func:`mask_text`, and request or response bodies (message texts) are
never logged at all. So are secrets sent where they should not be: a key in the
query string (``?api_key=…``, ``?token=…``) or written out as a header
(``X-API-Key: …``, ``Authorization: Bearer …``) in a message. This line is the
only request log, in every mode: ``make run`` and the container run gunicorn
without its access log, which printed query strings in full.

Imports no app: the API caller's label and tenant are read off ``request.user``
(``ApiCaller``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

logger = logging.getLogger("layan.request")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# --- masking (pure) ---------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-])[\w.-]*\.([A-Za-z]{2,})\b")
# A phone number: an optional +, then 8-15 digits possibly split by spaces, dots or dashes.
_PHONE = re.compile(r"(?<![\w])(\+?)(\d[\d\s.\-()]{6,18}\d)(?![\w])")
_API_KEY = re.compile(r"\b(sk_(?:live|test)_)[A-Za-z0-9_-]{4,}")
# A secret in a query string (?api_key=…, &access_token=…) or written out as a header or setting.
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:[\w.-]*[_.-])?(?:api_?key|key|token|secret|password|passwd|signature|sig)=)"
                           r"[^&#\s]*")
_SECRET_HEADER = re.compile(r"(?i)\b((?:x-)?api[_-]?key|authorization|x-layan-signature)(\"?'?\s*[:=]\s*\"?'?)"
                            r"(?:(?:bearer|basic|apikey)\s+)?[^\s\"',;&]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # ISO dates look like phone numbers; they are not personal
_URLENCODED_PLUS = re.compile(r"%2B", re.IGNORECASE)


def mask_email(match: re.Match) -> str:
    return f"{match.group(1)}***@{match.group(2)}***.{match.group(3)}"


def mask_phone(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(2))
    if not 8 <= len(digits) <= 15 or _DATE.fullmatch(match.group(2)):
        return match.group(0)
    return f"{match.group(1)}{digits[:2]}{'*' * (len(digits) - 5)}{digits[-3:]}"


def mask_text(text: str) -> str:
    """Mask e-mail addresses (``b***@e***.com``), phone numbers (``+62*******890``:
    country code and last three digits kept), API keys (``sk_live_****``), and secrets in
    query strings (``?api_key=****``) and written-out headers (``X-API-Key: ****``)."""
    if not text:
        return text
    text = _SECRET_PARAM.sub(r"\1****", text)
    text = _SECRET_HEADER.sub(r"\1\2****", text)
    text = _API_KEY.sub(r"\1****", text)
    text = _EMAIL.sub(mask_email, text)
    return _PHONE.sub(mask_phone, text)


def mask_path(path: str, query: str = "") -> str:
    """The path and query string with personal data masked (``%2B62…`` is read as ``+62…``)."""
    full = path + ("?" + query if query else "")
    from urllib.parse import unquote

    return mask_text(unquote(_URLENCODED_PLUS.sub("+", full)))


# --- formatting ---------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record, for any formatter to use."""

    def filter(self, record):
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (masked), request id and
    any ``extra={"fields": {...}}`` given to the call."""

    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        request_id = getattr(record, "request_id", "") or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


# --- middleware -------------------------------------------------------------------------


def route_of(request) -> str:
    """The URL pattern that answered (low cardinality, no ids), e.g. ``kb/documents/{pk}``."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    route = match.route or ""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    return route.strip("^$").removesuffix("/?") or "/"


@runtime_checkable
class ApiCaller(Protocol):
    """What the request log reads of a caller authenticated by an API key (``request.user``
    is then a ``tenants.auth.ApiClient``, which this base module does not import): its label
    and its tenant, None for the global key."""

    label: str
    tenant_id: str | None


def actor_of(request) -> tuple[str, str]:
    """(actor label, tenant id) of the request as far as it is known. The global key names
    its tenant in ``X-Tenant-Id`` or the path."""
    user = getattr(request, "user", None)
    tenant = ""
    match = getattr(request, "resolver_match", None)
    if isinstance(user, ApiCaller):
        tenant = user.tenant_id or request.META.get("HTTP_X_TENANT_ID", "") or \
            (match.kwargs.get("tenant_id", "") if match else "")
        return user.label, tenant
    if user is not None and getattr(user, "is_authenticated", False):
        return f"admin:{user.get_username()}", tenant
    return "anonymous", tenant


class RequestLogMiddleware:
    """Outermost middleware: assigns the request id, times the request, logs one line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-Id"] = request_id
            latency = time.perf_counter() - started
            self.log(request, response, latency)
            from agent_project import metrics

            metrics.http_observe(method=request.method, route=route_of(request), status=response.status_code,
                                 seconds=latency)
            return response
        finally:
            request_id_var.reset(token)

    def log(self, request, response, latency: float) -> None:
        actor, tenant = actor_of(request)
        fields = {
            "event": "request",
            "request_id": request.request_id,
            "method": request.method,
            "path": mask_path(request.path, request.META.get("QUERY_STRING", "")),
            "route": route_of(request),
            "status": response.status_code,
            "latency_ms": round(latency * 1000, 2),
            "tenant": tenant or None,
            "actor": actor,
        }
        error = getattr(response, "data", None)
        if error is None and response.status_code >= 400 and not getattr(response, "streaming", False) \
                and response.get("Content-Type", "").startswith("application/json"):
            try:  # errors answered by middleware (413, 422 limits, unknown routes) are plain JsonResponses
                error = json.loads(response.content)
            except ValueError:
                error = None
        if isinstance(error, dict) and isinstance(error.get("error"), dict):
            fields["error_code"] = error["error"].get("code")
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        logger.log(level, "%s %s %s", request.method, fields["route"], response.status_code, extra={"fields": fields})
