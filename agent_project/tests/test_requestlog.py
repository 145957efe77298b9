"""One JSON line per request with a request id, masked personal data, no keys or
message texts."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agent_project.requestlog import JsonFormatter, RequestIdFilter, mask_path, mask_text, request_id_var


@pytest.mark.parametrize("text, expected", [
    ("hubungi +62 812-3456-7890", "hubungi +62********890"),
    ("wa 081234567890 ya", "wa 08*******890 ya"),
    ("email budi.santoso@example.co.id", "email b***@e***.id"),
    ("key sk_live_AbCdEf123456789", "key sk_live_****"),
    ("order 12345 on 2026-11-25 for 150000", "order 12345 on 2026-11-25 for 150000"),  # not personal
    ("", ""),
])
def test_mask_text(text, expected):
    assert mask_text(text) == expected


def test_mask_path_reads_url_encoding():
    masked = mask_path("/contacts", "phone=%2B6281234567890&email=budi%40example.com")
    assert "6281234567890" not in masked and "budi@example.com" not in masked
    assert masked.startswith("/contacts?phone=+62")


@pytest.fixture
def request_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("layan.request")
    logger.addHandler(handler)

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    logger.removeHandler(handler)


def test_one_json_line_per_request_with_its_fields(request_lines, tenant_a, client_a):
    r = client_a.get("/tenants/tenant-a/settings")
    assert r.status_code == 200
    (line,) = request_lines()
    assert line["request_id"] == r["X-Request-Id"] and len(r["X-Request-Id"]) == 32
    assert (line["event"], line["method"], line["status"]) == ("request", "GET", 200)
    assert line["route"] == "tenants/{tenant_id}/settings"
    assert line["tenant"] == "tenant-a"
    assert line["actor"].startswith("key:sk_live_") and isinstance(line["latency_ms"], float)
    assert tenant_a.test_key not in json.dumps(line)


def test_the_global_key_and_an_operator_are_named_too(request_lines, tenant_a, global_client, operator):
    global_client.get("/tenants/tenant-a/settings", HTTP_X_TENANT_ID="tenant-a")
    operator.get("/admin/")
    api, admin = request_lines()
    assert (api["actor"], api["tenant"]) == ("global", "tenant-a")
    assert (admin["actor"], admin["tenant"]) == ("admin:op", None)


def test_incoming_request_id_is_kept_and_returned(request_lines, client_a):
    r = client_a.get("/tenants/tenant-a/settings", HTTP_X_REQUEST_ID="edge-7f3a.1")
    assert r["X-Request-Id"] == "edge-7f3a.1"
    assert request_lines()[0]["request_id"] == "edge-7f3a.1"


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "<script>"])
def test_unusable_request_id_is_replaced(request_lines, client_a, bad):
    r = client_a.get("/tenants/tenant-a/settings", HTTP_X_REQUEST_ID=bad)
    assert r["X-Request-Id"] != bad and len(r["X-Request-Id"]) == 32


def test_errors_are_logged_with_their_code(request_lines, anon_client):
    anon_client.get("/no/such/route")
    anon_client.get("/tenants/tenant-a/settings", HTTP_X_API_KEY="sk_live_wrongwrongwrongwrong")
    first, second = request_lines()
    assert (first["status"], first["route"], first["error_code"]) == (404, "<unmatched>", "not_found")
    assert (second["status"], second["error_code"], second["actor"]) == (401, "invalid_api_key", "anonymous")
    assert "sk_live_wrongwrong" not in json.dumps(second)


def test_personal_data_and_message_texts_stay_out_of_the_log(request_lines, client_a):
    client_a.get("/tenants/tenant-a/settings?phone=%2B6281234567890&email=budi%40example.com")
    client_a.post("/chat", {"tenant_id": "tenant-a", "user_id": "u1",
                            "messages": [{"role": "user", "content": "alamat rahasia saya Jl. Melati 5"}]},
                  format="json")
    text = "\n".join(json.dumps(line) for line in request_lines())
    assert "6281234567890" not in text and "budi@example.com" not in text and "budi%40example.com" not in text
    assert "Melati" not in text
    assert "+62********890" in text


def test_other_log_records_carry_the_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("layan.test")
    logger.addHandler(handler)
    token = request_id_var.set("req-123")
    try:
        logger.warning("sending to %s", "budi@example.com")
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["request_id"] == "req-123" and line["message"] == "sending to b***@e***.com"


def test_settings_send_request_lines_through_the_json_formatter(settings):
    handler = settings.LOGGING["handlers"][settings.LOGGING["loggers"]["layan.request"]["handlers"][0]]
    assert settings.LOGGING["formatters"][handler["formatter"]]["()"] == "agent_project.requestlog.JsonFormatter"
