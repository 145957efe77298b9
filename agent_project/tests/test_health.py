from datetime import timedelta

from django.utils import timezone
from django_q.models import Success

from agent_project.health import HEARTBEAT_FUNC


def test_health_reports_database_vector_and_providers(anon_client):
    response = anon_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["database"]["vector"].startswith("0.")
    assert body["database"]["pg_trgm"]
    assert body["database"]["server_version"].startswith("18")
    assert body["llm"]["provider"] and body["embedding"]["provider"]
    # no worker has run yet in a fresh test database
    assert body["worker"]["ok"] is False and body["status"] == "degraded"


def _success(stopped):
    Success.objects.create(id="x" * 32, name="hb", func=HEARTBEAT_FUNC, started=stopped, stopped=stopped,
                           success=True, result=None, attempt_count=1)


def test_health_sees_a_fresh_heartbeat(anon_client):
    _success(timezone.now() - timedelta(seconds=30))
    body = anon_client.get("/health/").json()
    assert body["worker"]["ok"] is True and body["status"] == "ok"


def test_health_flags_a_stale_heartbeat(anon_client):
    _success(timezone.now() - timedelta(minutes=10))
    body = anon_client.get("/health").json()
    assert body["worker"]["ok"] is False and body["worker"]["last_heartbeat"]


def test_health_is_503_when_the_database_is_gone(anon_client, monkeypatch):
    from agent_project import health

    def unreachable():
        raise health.connection.OperationalError if hasattr(health.connection, "OperationalError") else OSError()

    monkeypatch.setattr(health, "_database", unreachable)
    response = anon_client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_openapi_schema_and_docs(anon_client):
    schema = anon_client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/tenants/{tenant_id}/settings" in schema.json()["paths"]
    docs = anon_client.get("/api/docs")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    """Every route documents itself fully (a warning means an undescribed field, an
    ambiguous enum or a duplicate operation id, i.e. a schema that lies to clients)."""
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/chat" in out.read_text()


def test_health_names_the_embedder_and_the_tenants_not_yet_re_embedded(client, settings, make_tenant):
    from knowledge.services import entries_upsert
    from tenants.scoping import tenant_scope

    settings.EMBEDDING_PROVIDER, settings.EMBEDDING_MODEL_NAME = "fake", "old"
    tenant = make_tenant("health-a")
    with tenant_scope(tenant):
        entries_upsert(tenant=tenant, entries=[{"title": "Garansi", "content": "Garansi resmi 12 bulan."}])
    settings.EMBEDDING_MODEL_NAME = ""
    embedding = client.get("/health").json()["embedding"]
    assert embedding["model"] == "fake-384" and embedding["tenants_not_reembedded"] == 1
    settings.EMBEDDING_MODEL_NAME = "old"
    assert client.get("/health").json()["embedding"]["tenants_not_reembedded"] == 0
