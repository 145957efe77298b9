"""/metrics: Prometheus text that prometheus_client's own parser reads, with the
request, model and queue series; protected by METRICS_TOKEN."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent_project import metrics
from conftest import assert_error


def _families(response) -> dict:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def _value(family, suffix="", **labels):
    for sample in family.samples:
        if sample.name == family.name + suffix and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    return {"HTTP_AUTHORIZATION": "Bearer scrape-secret"}


def test_request_counts_and_latency_by_route_and_status(tenant_a, client_a, anon_client, metrics_token):
    before = _families(anon_client.get("/metrics", **metrics_token))
    counted = _value(before["layan_http_requests"], "_total", route="tenants/{tenant_id}/settings", status="200",
                     method="GET") or 0
    client_a.get("/tenants/tenant-a/settings")
    client_a.get("/tenants/tenant-a/settings")
    client_a.get("/tenants/tenant-b/settings")  # 403
    after = _families(anon_client.get("/metrics", **metrics_token))
    requests = after["layan_http_requests"]
    assert _value(requests, "_total", route="tenants/{tenant_id}/settings", status="200", method="GET") == counted + 2
    assert _value(requests, "_total", route="tenants/{tenant_id}/settings", status="403") >= 1
    latency = after["layan_http_request_duration_seconds"]
    assert _value(latency, "_count", route="tenants/{tenant_id}/settings", method="GET") >= 3


def test_model_embedding_retrieval_and_followup_series(anon_client, metrics_token, db):
    metrics.llm_call_observe(provider="gemini", model="gemini-2.5-flash", seconds=0.8, prompt_tokens=120,
                             completion_tokens=30)
    metrics.llm_call_observe(provider="gemini", model="gemini-2.5-flash", seconds=30, outcome="timeout")
    metrics.embedding_call_observe(provider="local", texts=32, seconds=0.5)
    metrics.retrieval_observe(seconds=0.004)
    metrics.followup_outcome_observe(outcome="sent")
    families = _families(anon_client.get("/metrics", **metrics_token))
    assert _value(families["layan_llm_calls"], "_total", outcome="timeout") >= 1
    assert _value(families["layan_llm_tokens"], "_total", kind="prompt") >= 120
    assert _value(families["layan_llm_tokens"], "_total", kind="completion") >= 30
    assert _value(families["layan_llm_call_duration_seconds"], "_count", provider="gemini") >= 2
    assert _value(families["layan_embedding_texts"], "_total", provider="local") >= 32
    assert _value(families["layan_retrieval_duration_seconds"], "_count") >= 1
    assert _value(families["layan_followups"], "_total", outcome="sent") >= 1
    assert "layan_task_queue_depth" in families and "layan_followup_queue_depth" in families


def test_task_queue_depth_reads_the_broker(db):
    """Against a queue of its own, so a worker sharing the broker is not disturbed."""
    import os

    from django_q.brokers import get_broker

    broker = get_broker(f"layan-metrics-test-{os.getpid()}")

    def depth():
        (family,) = [f for f in metrics.QueueCollector(broker).collect() if f.name == "layan_task_queue_depth"]
        return family.samples[0].value

    try:
        before = depth()
        broker.enqueue("payload-1")
        broker.enqueue("payload-2")
        assert (before, depth()) == (0, 2)
    finally:
        broker.delete_queue()


def test_followup_queue_depth_by_status(anon_client, metrics_token, db):
    families = _families(anon_client.get("/metrics", **metrics_token))
    assert dict(metrics.followup_counts()) == {
        s.labels["status"]: s.value for s in families["layan_followup_queue_depth"].samples}


def test_token_is_required_when_set(anon_client, metrics_token):
    r = anon_client.get("/metrics")
    assert_error(r, 401, "metrics_unauthorized")
    assert_error(anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong"), 401, "metrics_unauthorized")


def test_without_a_token_open_in_debug_only(settings, anon_client):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = True
    assert anon_client.get("/metrics").status_code == 200
    settings.DEBUG = False
    assert_error(anon_client.get("/metrics"), 404)


def test_a_real_chat_turn_moves_the_model_embedding_and_retrieval_series(tenant_a, client_a, anon_client,
                                                                         metrics_token, settings):
    """The providers and the search are observed at their seams, not only by hand."""

    settings.EMBEDDING_PROVIDER = "fake"
    settings.LLM_PROVIDER = "offline"
    before = _families(anon_client.get("/metrics", **metrics_token))
    upsert = client_a.post("/kb/upsert", {"title": "Jam buka", "content": "Toko buka setiap hari pukul 09.00."},
                           format="json")
    assert upsert.status_code in (200, 201), upsert.content
    assert client_a.post("/chat", {"user_id": "u1", "messages": [{"role": "user", "content": "Jam buka?"}]},
                         format="json").status_code == 200
    after = _families(anon_client.get("/metrics", **metrics_token))

    def grew(name, suffix, **labels):
        old = _value(before[name], suffix, **labels) if name in before else None
        return (_value(after[name], suffix, **labels) or 0) > (old or 0)

    assert grew("layan_llm_calls", "_total", provider="offline", outcome="ok")
    assert grew("layan_retrieval_duration_seconds", "_count", method="hybrid")
    assert grew("layan_embedding_texts", "_total", provider="fake-384")


def test_run_worker_will_not_serve_metrics_its_workers_cannot_write(monkeypatch):
    """Without PROMETHEUS_MULTIPROC_DIR the forked worker processes would count in memory of
    their own and the worker's /metrics would stay empty: refused before the cluster starts
    (the worker processes reporting to it are tested in followups/tests/test_workers.py)."""
    from django.core.management import CommandError, call_command

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(CommandError, match="PROMETHEUS_MULTIPROC_DIR"):
        call_command("run_worker", metrics_port=9)
