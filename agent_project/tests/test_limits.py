"""Request limits: each violation gets its own 413/422 answer, and a refused
request changes nothing."""

from __future__ import annotations

import json

import pytest

from agent_project.limits import chat_violation, json_depth, unstorable_text
from conftest import assert_error
from tenants.models import Tenant


@pytest.mark.parametrize("value, depth", [
    (1, 0), ("x", 0), ([], 1), ({}, 1), ([1, [2, [3]]], 3), ({"a": {"b": []}}, 3), ([[]] * 3, 2),
])
def test_json_depth(value, depth):
    assert json_depth(value, limit=50) == depth


def test_json_depth_stops_counting_past_the_limit():
    deep = []
    for _ in range(10_000):
        deep = [deep]
    assert json_depth(deep, limit=5) == 6


@pytest.mark.parametrize("body, code", [
    ({"messages": [{"role": "user", "content": "hi"}] * 3}, None),
    ({"messages": [{"role": "user", "content": "hi"}] * 4}, "too_many_messages"),
    ({"messages": [{"role": "user", "content": "x" * 11}]}, "message_too_long"),
    ({"messages": ["x" * 11]}, "message_too_long"),
    ({"message": "x" * 11}, "message_too_long"),
    ({"message": "x" * 10, "messages": "not a list"}, None),  # shape errors are the view's to answer
    (["not", "a", "dict"], None),
])
def test_chat_violation(body, code):
    found = chat_violation(body, max_messages=3, max_chars=10)
    assert (found[0] if found else None) == code


@pytest.mark.parametrize("value, where", [
    ({"a": "ok", "b": ["fine", {"c": 1}]}, None), ("a\x00", ""), ({"note": "a\x00b"}, "note"),
    ({"entries": [{}, {"metadata": {"x": [{"y": "\x00"}]}}]}, "entries[1].metadata.x[0].y"),
    ({"a\x00": 1}, "a\\x00"), ({"s": "\ud800"}, "s"), ({"ok": "\U0001F600 emoji"}, None),
    ({"n": [1.5, float("inf")]}, "n[1]"), ({"n": float("-inf")}, "n"), ({"n": 1e308}, None),
])
def test_unstorable_text(value, where):
    assert unstorable_text(value) == where


def test_nul_anywhere_in_json_is_400_and_nothing_is_stored(tenant_a, client_a):
    """Free-form JSON (an entry's metadata) reached jsonb, which refused it: a 500."""
    from knowledge.models import Document

    for metadata in ({"note": "a\x00b"}, {"a\x00": 1}, {"x": [{"y": "\x00"}]}, {"big": float("inf")}):
        r = client_a.post("/kb/upsert", json.dumps({"title": "T", "content": "Isi", "metadata": metadata}),
                          content_type="application/json")
        assert "NUL" in assert_error(r, 400, "validation_error")["message"]
    r = client_a.post("/kb/upsert", '{"title": "T", "content": "Isi", "metadata": {"n": 1e400}}',
                      content_type="application/json")
    assert assert_error(r, 400, "validation_error")["details"] == {"field": "metadata.n"}
    r = client_a.put("/tenants/tenant-a/settings", json.dumps({"persona": "x\x00"}), content_type="application/json")
    assert assert_error(r, 400, "validation_error")["details"] == {"field": "persona"}
    assert Tenant.objects.get(pk="tenant-a").persona == "Kamu asisten Toko A."
    assert not Document.objects.exists()


@pytest.mark.parametrize("query", ["external_id=%00", "tag=a%00", "status=%00", "%00=1"])
def test_nul_in_a_query_parameter_is_400(client_a, query):
    assert_error(client_a.get(f"/kb/documents?{query}"), 400, "malformed_request")


def test_too_many_fields_or_files_is_400_not_500(settings, client_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
    fields = {f"f{i}": "x" for i in range(21)}
    r = client_a.post("/kb/upload", {**fields, "file": SimpleUploadedFile("a.txt", b"halo")}, format="multipart")
    assert assert_error(r, 400, "too_many_fields")["details"] == {"max_fields": 20}
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 5
    files = {f"f{i}": SimpleUploadedFile(f"{i}.txt", b"a") for i in range(6)}
    r = client_a.post("/kb/upload", files, format="multipart")
    assert "settings" not in assert_error(r, 400, "too_many_files")["message"]


def test_body_over_the_limit_is_413_and_nothing_changes(settings, tenant_a, client_a):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = client_a.put("/tenants/tenant-a/settings", {"persona": "x" * 2000}, format="json")
    error = assert_error(r, 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 1000
    assert Tenant.objects.get(pk="tenant-a").persona == "Kamu asisten Toko A."


def test_upload_over_the_limit_is_413_file_too_large(settings, client_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MAX_UPLOAD_BYTES = 10_000
    big = SimpleUploadedFile("big.txt", b"a" * 200_000, content_type="text/plain")
    r = client_a.put("/tenants/tenant-a/settings", {"file": big}, format="multipart")
    assert assert_error(r, 413, "file_too_large")["details"]["limit"] == 10_000


def test_upload_within_the_limit_passes_the_check(settings, client_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MAX_UPLOAD_BYTES = 10_000
    small = SimpleUploadedFile("small.txt", b"a" * 5_000, content_type="text/plain")
    r = client_a.put("/tenants/tenant-a/settings", {"file": small, "name": "Toko A"}, format="multipart")
    assert r.status_code == 200


def test_deep_json_is_422(settings, tenant_a, client_a):
    settings.MAX_JSON_DEPTH = 5
    nested = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}
    r = client_a.put("/tenants/tenant-a/settings", data=json.dumps({"working_hours": nested}),
                     content_type="application/json")
    assert assert_error(r, 422, "json_too_deep")["details"]["max_depth"] == 5
    assert Tenant.objects.get(pk="tenant-a").working_hours == {}


def test_pathologically_deep_json_is_422_not_a_crash(client_a):
    r = client_a.put("/tenants/tenant-a/settings", data="[" * 200_000 + "]" * 200_000,
                     content_type="application/json")
    assert_error(r, 422, "json_too_deep")


def test_malformed_json_is_left_to_the_parser(client_a):
    r = client_a.put("/tenants/tenant-a/settings", data="{not json", content_type="application/json")
    assert_error(r, 400, "malformed_request")


@pytest.mark.parametrize("messages, code", [
    ([{"role": "user", "content": "halo"}] * 4, "too_many_messages"),
    ([{"role": "user", "content": "x" * 101}], "message_too_long"),
])
def test_chat_message_limits_are_422(settings, client_a, messages, code):
    settings.CHAT_MAX_MESSAGES = 3
    settings.CHAT_MAX_MESSAGE_CHARS = 100
    r = client_a.post("/chat", {"tenant_id": "tenant-a", "user_id": "u1", "messages": messages}, format="json")
    assert_error(r, 422, code)


@pytest.mark.parametrize("value, status, code", [
    ("500", 422, "page_size_too_large"), ("0", 422, "invalid_page_size"), ("abc", 422, "invalid_page_size"),
    ("-3", 422, "invalid_page_size"), ("200", 200, None),
])
def test_page_size_cap(client_a, value, status, code):
    r = client_a.get(f"/tenants/tenant-a/settings?page_size={value}")
    if code:
        assert_error(r, status, code)
    else:
        assert r.status_code == status


def test_limits_do_not_touch_the_admin(settings, admin_client):
    settings.MAX_JSON_DEPTH = 1
    assert admin_client.get("/admin/?page_size=100000").status_code == 200
