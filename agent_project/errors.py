"""Every API error is JSON: ``{"error": {"code", "message", "details"}}``.

``ApiError`` is what services and views raise for domain errors (a stable
``code`` per situation); DRF's own exceptions are mapped onto the same shape,
and the middleware catches what happens outside DRF (unknown paths, an
oversized body, a crash) so that no API client ever receives an HTML page.

A database that cannot be reached (down, restarting, out of connections) is not a
crash: wherever it surfaces (a view, a middleware, authentication) the answer is
``503 database_unavailable`` with ``Retry-After``, and ``/admin`` gets a plain 503.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, ValidationError as DjangoValidationError,
)
from django.core.signals import got_request_exception
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(drf.APIException):
    """A domain error with its own stable code, e.g. ``ApiError(409, "contact_conflict", "...")``."""

    def __init__(self, status_code: int, code: str, message: str, details=None, headers: dict | None = None):
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}
        super().__init__(detail=message, code=code)


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status: int, code: str, message: str, details=None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


#: seconds a client is asked to wait when the database cannot be reached
DATABASE_RETRY_AFTER = 5
_UNAVAILABLE_MESSAGE = "The database cannot be reached right now. Try again in a few seconds."
#: SQLSTATEs of a server that is there but will not serve: shutting down, crashed, starting up, out of connections
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) says the database cannot be reached: no connection could be
    made, the server closed it or is shutting down, or a connection it had already closed was used. A failed
    query (a deadlock, a timeout, bad SQL) is not that."""
    import psycopg
    from django.db import InterfaceError

    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, (psycopg.InterfaceError, InterfaceError)):
            return True
        if isinstance(exc, psycopg.OperationalError):
            state = exc.sqlstate
            return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES
        exc = exc.__cause__ or exc.__context__
    return False


def database_unavailable_response(request) -> HttpResponse:
    if _wants_json(request):
        response = error_response(503, "database_unavailable", _UNAVAILABLE_MESSAGE,
                                  {"retry_after_seconds": DATABASE_RETRY_AFTER})
    else:
        response = HttpResponse(_UNAVAILABLE_MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def _remember_exception(sender, request=None, **kwargs) -> None:
    """Django answers an exception raised in a middleware with a 500 page of its own; keep the exception on the
    request so that JsonErrorMiddleware can tell a database outage (503) from a crash."""
    if request is not None:
        request.uncaught_exception = sys.exc_info()[1]


got_request_exception.connect(_remember_exception, dispatch_uid="layan-remember-exception")


_DRF_CODES = {
    drf.ParseError: "malformed_request",
    drf.AuthenticationFailed: "authentication_failed",
    drf.NotAuthenticated: "not_authenticated",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
    drf.ValidationError: "validation_error",
}


def _message_of(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return f"{key}: {_message_of(value)}" if key != "non_field_errors" else _message_of(value)
    if isinstance(detail, list) and detail:
        return _message_of(detail[0])
    return str(detail)


def api_exception_handler(exc, context):
    if isinstance(exc, ApiError):
        headers = dict(exc.headers)
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", 'ApiKey header="X-API-Key"')
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=headers)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
        return Response(error_body(*_refused_body(exc)), status=413 if isinstance(exc, RequestDataTooBig) else 400)

    elif database_unavailable(exc):
        logger.warning("database unavailable, answered 503: %s", exc)
        return Response(error_body("database_unavailable", _UNAVAILABLE_MESSAGE,
                                   {"retry_after_seconds": DATABASE_RETRY_AFTER}),
                        status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
    elif _retryable_database_error(exc):
        # Defence in depth: writers take their locks in one order (knowledge.services.chunks._lock_stats),
        # but a client should still get something it can act on, not a 500.
        logger.warning("database conflict, answered 503: %s", exc)
        return Response(error_body("write_conflict", "A concurrent change got in the way of this request; "
                                   "nothing was stored. Try again."), status=503, headers={"Retry-After": "1"})

    from rest_framework.views import exception_handler  # imported late: DRF's views read our settings

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(error_body("internal_error", "An unexpected error occurred."), status=500)

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    detail = exc.detail if isinstance(exc, drf.APIException) else response.data
    if isinstance(exc, drf.ValidationError):
        message = "The request is invalid: " + _message_of(detail)
        details = detail
        response.status_code = 400
    else:
        message = _message_of(detail)
        details = None
    if isinstance(exc, drf.Throttled) and exc.wait is not None:
        details = {"retry_after_seconds": int(exc.wait)}
    response.data = error_body(code, message, details)
    return response


def _refused_body(exc) -> tuple[str, str, dict]:
    """What Django's own request-parsing limits answer (its messages name its settings)."""
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return "too_many_fields", f"The request has more than {limit} form fields.", {"max_fields": limit}
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return "too_many_files", f"The request has more than {limit} files.", {"max_files": limit}
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return ("payload_too_large", f"The request's fields may be at most {limit} bytes together (files aside).",
            {"max_bytes": limit})


def _retryable_database_error(exc) -> bool:
    """A deadlock, serialization failure or lock timeout: the transaction was rolled back
    and the same request may well succeed a moment later."""
    from django.db import OperationalError
    from psycopg import errors

    cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
    return isinstance(cause, (errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable))


def _wants_json(request) -> bool:
    return not request.path.startswith("/admin")


class JsonErrorMiddleware:
    """Answers errors raised outside DRF views (404 for unknown paths, 413, 500) in JSON, and a database outage
    anywhere below it with 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 500 and database_unavailable(getattr(request, "uncaught_exception", None)):
            return database_unavailable_response(request)
        if _wants_json(request) and response.status_code in (404, 405, 400, 403, 500) and not _is_json(response):
            return {
                404: lambda: error_response(404, "not_found", f"No route for {request.method} {request.path}."),
                405: lambda: error_response(405, "method_not_allowed", f"{request.method} is not allowed here."),
                400: lambda: error_response(400, "bad_request", "The request could not be understood."),
                403: lambda: error_response(403, "permission_denied", "You may not do this."),
                500: lambda: error_response(500, "internal_error", "An unexpected error occurred."),
            }[response.status_code]()
        return response

    def process_exception(self, request, exception):
        if database_unavailable(exception):
            logger.warning("database unavailable on %s, answered 503: %s", request.path, exception)
            return database_unavailable_response(request)
        if not _wants_json(request):
            return None
        if isinstance(exception, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
            return error_response(413 if isinstance(exception, RequestDataTooBig) else 400, *_refused_body(exception))
        logger.exception("Unhandled error on %s", request.path, exc_info=exception)
        return error_response(500, "internal_error", "An unexpected error occurred.")


def _is_json(response) -> bool:
    return response.get("Content-Type", "").startswith("application/json")
