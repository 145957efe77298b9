"""The isolation matrix: every route in the URL conf, every method it answers, tried
with tenant B's credentials against tenant A's objects, must be refused (403 when B
names tenant A, 404 when B points at A's object by id) and must leave A's data as
it was. A route (or a new method on a route) without an entry in ``MATRIX`` fails
``test_route_is_refused_across_tenants``, so nobody can add a route and forget this.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from conftest import assert_error

METHODS = ("get", "post", "put", "patch", "delete")


def api_routes() -> list[tuple[str, str, str]]:
    """(url name, METHOD, pattern) for every non-admin route and method it answers."""
    found = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if str(pattern.pattern).startswith("admin/"):
                    continue  # the operator console: staff sessions, no tenant keys
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                callback = pattern.callback
                actions = getattr(callback, "actions", None)
                cls = getattr(callback, "cls", None)
                if actions:
                    methods = [m.upper() for m in actions]
                elif cls is not None:
                    methods = [m.upper() for m in METHODS if hasattr(cls, m)]
                else:
                    methods = ["GET"]  # a plain Django view (/metrics)
                for method in methods:
                    found.append((pattern.name or prefix + str(pattern.pattern), method, prefix + str(pattern.pattern)))

    walk(get_resolver().url_patterns)
    return sorted(found)


@dataclass(frozen=True)
class Case:
    """How tenant B tries it. ``path`` is formatted with A's objects; ``as_b``: the
    request carries B's key; ``names_a``: it names tenant A (header, or ``tenant_id``
    in the body); ``expect``: the refusal statuses accepted."""

    path: str
    expect: tuple[int, ...]
    body: dict | None = None
    names_a: bool = False
    fmt: str = "json"
    still_there: str | None = None  # a GET (as A) that must still answer 200 afterwards
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NoTenantData:
    """Routes that hold no tenant data: said so, with the reason, instead of skipped silently."""

    reason: str


BY_ID = (404,)
NAMING_A = (403,)

MATRIX: dict[tuple[str, str], Case | NoTenantData | str] = {
    ("health", "GET"): NoTenantData("service status, no tenant data"),
    ("metrics", "GET"): NoTenantData("operator metrics behind METRICS_TOKEN, aggregated over tenants"),
    ("schema", "GET"): NoTenantData("the OpenAPI document"),
    ("docs", "GET"): NoTenantData("the interactive API docs page"),
    # tenants
    ("tenant-settings", "GET"): Case("/tenants/tenant-a/settings", NAMING_A),
    ("tenant-settings", "PUT"): Case("/tenants/tenant-a/settings", NAMING_A, body={"name": "Hijacked"}),
    ("tenant-settings", "PATCH"): Case("/tenants/tenant-a/settings", NAMING_A, body={"persona": "Hijacked"}),
    # knowledge
    ("kb-upsert", "POST"): Case("/kb/upsert", NAMING_A, names_a=True, body={"title": "x", "content": "y"}),
    ("kb-upload", "POST"): Case("/kb/upload", NAMING_A, names_a=True, fmt="multipart", body={"title": "x"}),
    ("kb-search", "POST"): Case("/kb/search", NAMING_A, names_a=True, body={"query": "jam buka"}),
    ("kb-documents", "GET"): Case("/kb/documents", NAMING_A, names_a=True),
    ("kb-document", "GET"): Case("/kb/documents/{document}", BY_ID),
    ("kb-document", "DELETE"): Case("/kb/documents/{document}", BY_ID, still_there="/kb/documents/{document}"),
    # contacts
    ("contacts", "GET"): Case("/contacts", NAMING_A, names_a=True),
    ("contacts", "POST"): Case("/contacts", NAMING_A, names_a=True, body={"name": "x", "phone": "+6281299990000"}),
    ("contact-logs", "GET"): Case("/contacts/logs?contact_id={contact}", NAMING_A, names_a=True),
    ("contact-logs", "POST"): Case("/contacts/logs", BY_ID, body={"contact_id": "{contact}", "content": "halo",
                                                                  "channel": "whatsapp", "role": "user"}),
    ("contact-export", "GET"): Case("/contacts/export", NAMING_A, names_a=True),
    ("contact-detail", "GET"): Case("/contacts/{contact}", BY_ID),
    ("contact-detail", "PATCH"): Case("/contacts/{contact}", BY_ID, body={"name": "Hijacked"},
                                      still_there="/contacts/{contact}"),
    ("contact-detail", "DELETE"): Case("/contacts/{contact}", BY_ID, still_there="/contacts/{contact}"),
    ("contact-merge", "POST"): Case("/contacts/{contact}/merge", BY_ID, body={"source_id": "{b_contact}"},
                                    still_there="/contacts/{contact}"),
    # conversations
    ("chat", "POST"): Case("/chat", NAMING_A, names_a=True,
                           body={"user_id": "u1", "messages": [{"role": "user", "content": "halo"}]}),
    ("conversation-list", "GET"): Case("/conversations", NAMING_A, names_a=True),
    ("conversation-detail", "GET"): Case("/conversations/{conversation}", BY_ID),
    ("message-feedback", "POST"): Case("/conversations/{conversation}/messages/{message}/feedback", BY_ID,
                                       body={"rating": 1}),
    # follow-ups
    ("followup-schedule", "POST"): Case("/followup/schedule", NAMING_A, names_a=True,
                                        body={"user_id": "u1", "message": "halo", "delay_minutes": 5}),
    ("followup-pending", "GET"): Case("/followup/pending", NAMING_A, names_a=True),
    ("followup-list", "GET"): Case("/followup", NAMING_A, names_a=True),
    ("followup-detail", "GET"): Case("/followup/{followup}", BY_ID),
    ("followup-cancel", "POST"): Case("/followup/{followup}/cancel", BY_ID, still_there="/followup/{followup}"),
    ("followup-retry", "POST"): Case("/followup/{followup}/retry", BY_ID),
    # channels: the webhook's own credential (signature/secret) is the key; B signs with B's.
    ("channels-whatsapp", "GET"): "whatsapp-verify",
    ("channels-whatsapp", "POST"): "whatsapp-webhook",
    ("channels-telegram", "POST"): "telegram-webhook",
    ("conversation-reply", "POST"): Case("/conversations/{conversation}/reply", BY_ID, body={"text": "halo"}),
    ("conversation-handoff", "POST"): Case("/conversations/{conversation}/handoff", BY_ID,
                                           body={"status": "human", "notify": False}),
    # tools
    ("tool-list", "GET"): Case("/tools", NAMING_A, names_a=True),
}

ROUTES = api_routes()


@pytest.fixture
def a_objects(tenant_a, tenant_b, client_a, client_b):
    """One of everything, owned by tenant A, made through A's own API; plus one contact of B's."""
    objects = {}
    r = client_a.post("/kb/upsert", {"title": "Jam buka", "content": "Toko A buka jam 9 pagi sampai 5 sore."},
                      format="json")
    assert r.status_code in (200, 201, 202), r.content
    objects["document"] = r.json()["id"]
    r = client_a.post("/contacts", {"name": "Budi", "phone": "+6281234567890"}, format="json")
    assert r.status_code in (200, 201), r.content
    objects["contact"] = r.json()["id"]
    r = client_b.post("/contacts", {"name": "Sari", "phone": "+6281311112222"}, format="json")
    objects["b_contact"] = r.json()["id"]
    r = client_a.post("/chat", {"user_id": "u-a", "messages": [{"role": "user", "content": "Jam buka?"}]},
                      format="json")
    assert r.status_code == 200, r.content
    objects["conversation"] = r.json()["conversation_id"]
    detail = client_a.get(f"/conversations/{objects['conversation']}").json()
    objects["message"] = detail["messages"][-1]["id"]
    r = client_a.post("/followup/schedule", {"contact_id": objects["contact"], "message": "Halo lagi",
                                             "delay_minutes": 60}, format="json")
    assert r.status_code in (200, 201), r.content
    objects["followup"] = r.json()["id"]
    return objects


def _fill(value, objects):
    if isinstance(value, str):
        filled = value.format(**objects)
        return int(filled) if value.startswith("{") and filled.isdigit() else filled
    if isinstance(value, dict):
        return {k: _fill(v, objects) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, objects) for v in value]
    return value


def _channels_configured(tenant_a, tenant_b):
    from channels.models import ChannelConfig
    from tenants.scoping import tenant_scope

    for tenant, n in ((tenant_a, "1"), (tenant_b, "2")):
        with tenant_scope(tenant):  # rows as a verified setup leaves them (no call to Meta or Telegram)
            ChannelConfig.objects.create(
                tenant=tenant, whatsapp_enabled=True, whatsapp_phone_number_id=f"10{n}", whatsapp_access_token=f"token-{n}",
                whatsapp_app_secret=f"app-secret-{n}", whatsapp_verify_token=f"verify-{n}", telegram_enabled=True,
                telegram_bot_token=f"12345{n}:" + f"bot-secret-{n}-" * 3, telegram_bot_id=f"12345{n}",
                telegram_webhook_secret=f"tg-secret-{n}")


def _webhook_case(kind, anon_client, tenant_a, tenant_b):
    """B's channel credentials presented at A's webhook address."""
    _channels_configured(tenant_a, tenant_b)
    if kind == "whatsapp-verify":
        return anon_client.get("/channels/whatsapp/tenant-a/webhook",
                               {"hub.mode": "subscribe", "hub.verify_token": "verify-2", "hub.challenge": "42"})
    if kind == "whatsapp-webhook":
        body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        signature = "sha256=" + hmac.new(b"app-secret-2", body, hashlib.sha256).hexdigest()
        return anon_client.post("/channels/whatsapp/tenant-a/webhook", data=body, content_type="application/json",
                                HTTP_X_HUB_SIGNATURE_256=signature)
    body = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                        "from": {"id": 5, "is_bot": False, "first_name": "x"}, "text": "halo"}}
    return anon_client.post("/channels/telegram/tenant-a/webhook", body, format="json",
                            HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN="tg-secret-2")


@pytest.mark.parametrize("name, method, pattern", ROUTES, ids=[f"{m} {n}" for n, m, _ in ROUTES])
def test_route_is_refused_across_tenants(name, method, pattern, request, db):
    entry = MATRIX.get((name, method))
    assert entry is not None, (
        f"{method} {pattern} ({name}) has no entry in the isolation matrix: add one to MATRIX in {__file__}")
    if isinstance(entry, NoTenantData):
        assert entry.reason
        return
    objects = request.getfixturevalue("a_objects")
    if isinstance(entry, str):
        response = _webhook_case(entry, request.getfixturevalue("anon_client"),
                                 request.getfixturevalue("tenant_a"), request.getfixturevalue("tenant_b"))
        assert_error(response, 403)
        return
    client_b = request.getfixturevalue("client_b")
    path = _fill(entry.path, objects)
    body = _fill(entry.body, objects) if entry.body is not None else None
    extra = dict(entry.headers)
    if entry.names_a:
        extra["HTTP_X_TENANT_ID"] = "tenant-a"
        if body is not None and entry.fmt == "json":
            body = {**body, "tenant_id": "tenant-a"}
    send = getattr(client_b, method.lower())
    if method == "GET":
        response = send(path, **extra)
    else:
        response = send(path, body, format=entry.fmt, **extra)
    error = assert_error(response, response.status_code)
    assert response.status_code in entry.expect, (method, path, response.status_code, error)
    if entry.still_there:
        client_a = request.getfixturevalue("client_a")
        assert client_a.get(_fill(entry.still_there, objects)).status_code == 200


def test_matrix_has_no_stale_entries():
    live = {(name, method) for name, method, _ in ROUTES}
    assert set(MATRIX) - live == set(), "entries for routes that no longer exist"


def test_b_lists_never_show_a_objects(a_objects, client_b):
    """Without naming A, B's own lists are B's alone."""
    for path, key in (("/kb/documents", "document"), ("/contacts", "contact"), ("/conversations", "conversation"),
                      ("/followup", "followup")):
        body = client_b.get(path).json()
        rows = body["results"] if isinstance(body, dict) and "results" in body else body
        assert a_objects[key] not in {row.get("id") for row in rows}, path
