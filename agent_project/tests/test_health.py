from datetime import timedelta

import pytest
from django.utils import timezone

from agent_project.health import HEARTBEATS
from agent_project.testing.heartbeats import beat as _beat


def test_health_reports_database_vector_and_providers(anon_client):
    _beat("realtime", timezone.now())
    _beat("ingest", timezone.now())
    response = anon_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["database"]["vector"].startswith("0.")
    assert body["database"]["pg_trgm"]
    assert body["database"]["server_version"].startswith("18")
    assert body["llm"]["provider"] and body["embedding"]["provider"]
    assert body["status"] == "ok" and body["worker"]["ok"] is True


def test_health_is_503_while_no_worker_has_ever_beaten(anon_client):
    """A fresh installation, or workers that never started: chat may answer, but nothing in the background runs."""
    response = anon_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"]["ok"] is True and body["worker"]["ok"] is False
    assert body["worker"]["queues"] == {"realtime": {"ok": False, "last_heartbeat": None},
                                        "ingest": {"ok": False, "last_heartbeat": None}}


def test_health_sees_fresh_heartbeats_of_both_queues(anon_client):
    _beat("realtime", timezone.now() - timedelta(seconds=30))
    _beat("ingest", timezone.now() - timedelta(seconds=50))
    response = anon_client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["worker"]["ok"] is True and body["status"] == "ok"
    assert all(q["ok"] and q["last_heartbeat"] for q in body["worker"]["queues"].values())


@pytest.mark.parametrize("stale", ["realtime", "ingest"])
def test_health_is_503_when_one_queue_has_not_beaten_within_its_interval(anon_client, stale):
    """It said "degraded" with 200: a load balancer or an orchestrator saw nothing wrong with a dead worker."""
    for queue in HEARTBEATS:
        _beat(queue, timezone.now() - (timedelta(minutes=10) if queue == stale else timedelta(seconds=20)))
    response = anon_client.get("/health")
    assert response.status_code == 503
    queues = response.json()["worker"]["queues"]
    assert queues[stale]["ok"] is False and queues[stale]["last_heartbeat"]
    assert all(q["ok"] for name, q in queues.items() if name != stale)


def test_health_is_503_when_the_database_is_gone(anon_client, monkeypatch):
    from agent_project import health

    def unreachable():
        raise health.connection.OperationalError if hasattr(health.connection, "OperationalError") else OSError()

    monkeypatch.setattr(health, "_database", unreachable)
    response = anon_client.get("/health")
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
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
