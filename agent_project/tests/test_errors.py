"""Every API error is JSON {"error": {"code", "message", "details"}}, never an HTML page."""

import json

import pytest
from django.test import RequestFactory
from rest_framework.exceptions import Throttled

from agent_project.errors import JsonErrorMiddleware, api_exception_handler
from conftest import assert_error

SETTINGS = "/tenants/tenant-a/settings"


def test_400_malformed_json(client_a):
    response = client_a.generic("PUT", SETTINGS, '{"name": ', content_type="application/json")
    assert_error(response, 400, "malformed_request")


def test_400_field_validation_names_the_field(client_a):
    error = assert_error(client_a.put(SETTINGS, {"name": "x" * 500}, format="json"), 400, "validation_error")
    assert "name" in error["details"] and "name" in error["message"]


def test_401_without_key(anon_client, tenant_a):
    assert_error(anon_client.get(SETTINGS), 401, "not_authenticated")


def test_403_other_tenant(client_b, tenant_a):
    assert_error(client_b.get(SETTINGS), 403, "tenant_mismatch")


@pytest.mark.parametrize("path", ["/nope", "/tenants", "/tenants/a/settings/extra", "/kb/../etc/passwd"])
def test_404_unknown_route_is_json(client_a, path):
    assert_error(client_a.get(path), 404, "not_found")


def test_405_wrong_method(client_a):
    assert_error(client_a.delete(SETTINGS), 405, "method_not_allowed")


def test_413_body_too_large(client_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client_a.put(SETTINGS, {"persona": "x" * 5000}, format="json")
    assert_error(response, 413, "payload_too_large")
    assert client_a.get(SETTINGS).json()["persona"] == "Kamu asisten Toko A."


def test_415_unsupported_media_type(client_a):
    response = client_a.generic("PUT", SETTINGS, "name=x", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_422_domain_validation(client_a):
    assert_error(client_a.put(SETTINGS, {"timezone": "Nowhere/Land"}, format="json"), 422, "invalid_settings")


def test_429_shape_and_retry_after():
    response = api_exception_handler(Throttled(wait=12), {})
    assert response.status_code == 429
    assert response.data["error"]["code"] == "rate_limited"
    assert response.data["error"]["details"] == {"retry_after_seconds": 12}
    assert response["Retry-After"] == "12"


def test_500_inside_a_view_is_json_without_internals():
    response = api_exception_handler(RuntimeError("secret internals"), {})
    assert response.status_code == 500
    assert response.data == {"error": {"code": "internal_error", "message": "An unexpected error occurred.",
                                       "details": None}}


def test_a_deadlock_is_a_retryable_503_not_a_500():
    from django.db import OperationalError
    from psycopg import errors

    try:
        try:
            raise errors.DeadlockDetected("deadlock detected")
        except errors.DeadlockDetected as cause:
            raise OperationalError("deadlock detected") from cause
    except OperationalError as exc:
        response = api_exception_handler(exc, {})
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.data["error"]["code"] == "write_conflict"
    assert api_exception_handler(OperationalError("server closed the connection"), {}).status_code == 500


def test_500_outside_drf_is_json():
    request = RequestFactory().get("/anything")
    middleware = JsonErrorMiddleware(lambda r: None)
    response = middleware.process_exception(request, RuntimeError("boom"))
    assert response.status_code == 500 and b"boom" not in response.content
    assert json.loads(response.content)["error"]["code"] == "internal_error"


def test_admin_keeps_its_html_pages(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
