"""Prometheus metrics, served at ``/metrics``.

Counters and histograms live in this module; other code records through the
small ``*_observe`` functions below, so metric names and labels stay in one place.
Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty,
writable folder; the compose file does) so that every worker's numbers are
summed on each scrape; without it each worker answers with its own.

``/metrics`` is protected by settings: with ``METRICS_TOKEN`` set the scraper sends
``Authorization: Bearer <token>``; without a token it is open only when
``DEBUG`` is on, and answers 404 otherwise.
"""

from __future__ import annotations

import hmac
import json
import os
from http import HTTPStatus

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from agent_project.errors import error_body, error_response

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter("layan_http_requests", "HTTP requests answered.", ["method", "route", "status"])
HTTP_LATENCY = Histogram("layan_http_request_duration_seconds", "Time to answer an HTTP request.",
                         ["method", "route"], buckets=LATENCY_BUCKETS)
LLM_CALLS = Counter("layan_llm_calls", "Calls to the chat model.", ["provider", "model", "outcome"])
LLM_TOKENS = Counter("layan_llm_tokens", "Tokens sent to and received from the chat model.",
                     ["provider", "model", "kind"])
LLM_LATENCY = Histogram("layan_llm_call_duration_seconds", "Chat model call latency.", ["provider", "model"],
                        buckets=LATENCY_BUCKETS)
EMBEDDING_CALLS = Counter("layan_embedding_calls", "Embedding batches computed.", ["provider", "outcome"])
EMBEDDING_TEXTS = Counter("layan_embedding_texts", "Texts embedded.", ["provider"])
EMBEDDING_LATENCY = Histogram("layan_embedding_call_duration_seconds", "Embedding batch latency.", ["provider"],
                              buckets=LATENCY_BUCKETS)
RETRIEVAL_LATENCY = Histogram("layan_retrieval_duration_seconds", "Knowledge-base retrieval latency.", ["method"],
                              buckets=LATENCY_BUCKETS)
FOLLOWUP_OUTCOMES = Counter("layan_followups", "Follow-ups finished, by outcome (sent, failed, cancelled, ...).",
                            ["outcome"])
RATE_LIMITED = Counter("layan_rate_limited", "Requests refused with 429, by scope.", ["scope"])


def http_observe(*, method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def llm_call_observe(*, provider: str, model: str, seconds: float, outcome: str = "ok",
                     prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
    """Call once per chat-model request (outcome: ok, error, timeout, fallback)."""
    LLM_CALLS.labels(provider, model, outcome).inc()
    LLM_LATENCY.labels(provider, model).observe(seconds)
    if prompt_tokens > 0:  # a provider's odd negative count must not fail a good reply
        LLM_TOKENS.labels(provider, model, "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        LLM_TOKENS.labels(provider, model, "completion").inc(completion_tokens)


def embedding_call_observe(*, provider: str, texts: int, seconds: float, outcome: str = "ok") -> None:
    EMBEDDING_CALLS.labels(provider, outcome).inc()
    EMBEDDING_TEXTS.labels(provider).inc(texts)
    EMBEDDING_LATENCY.labels(provider).observe(seconds)


def retrieval_observe(*, seconds: float, method: str = "hybrid") -> None:
    RETRIEVAL_LATENCY.labels(method).observe(seconds)


def followup_outcome_observe(*, outcome: str) -> None:
    FOLLOWUP_OUTCOMES.labels(outcome).inc()


class QueueCollector:
    """Gauges read at scrape time from the database and the task broker, so they are
    right whichever process answers the scrape."""

    def __init__(self, broker=None):
        self.broker = broker  # default: the cluster's own queue

    def collect(self):
        depth = GaugeMetricFamily("layan_task_queue_depth", "Tasks waiting in the django-q2 broker.")
        try:
            from django_q.brokers import get_broker

            depth.add_metric([], (self.broker or get_broker()).queue_size() or 0)
        except Exception:  # a broker that is down must not break the scrape; it shows as absent
            pass
        yield depth
        followups = GaugeMetricFamily("layan_followup_queue_depth", "Follow-ups by status.", labels=["status"])
        for status, count in followup_counts():
            followups.add_metric([status], count)
        yield followups


def followup_counts() -> list[tuple[str, int]]:
    """Follow-ups per status across tenants (a cross-tenant read, for operators only)."""
    from django.apps import apps

    try:
        model = apps.get_model("followups", "FollowUp")
    except LookupError:
        return []
    if "status" not in {f.name for f in model._meta.get_fields()}:
        return []
    from django.db.models import Count
    from django_scopes import scopes_disabled

    with scopes_disabled():
        rows = model.objects.values_list("status").annotate(n=Count("pk")).order_by()
        return [(str(status), n) for status, n in rows]


class _Exposition:
    """What one scrape reports: this process's (or, in multiprocess mode, every
    worker's) metrics plus, on the web side, the gauges read at scrape time."""

    def __init__(self, queue_gauges: bool = True):
        self.queue_gauges = queue_gauges

    def collect(self):
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            yield from merged.collect()
        else:
            yield from REGISTRY.collect()
        if self.queue_gauges:
            yield from QueueCollector().collect()


def _refusal(authorization: str) -> tuple[int, str, str] | None:
    """Why a scrape is refused (status, code, message), or None: with ``METRICS_TOKEN``
    the scraper must send it as a bearer token; without one, metrics are served only
    with ``DEBUG`` on."""
    token = settings.METRICS_TOKEN
    if token:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            return 401, "metrics_unauthorized", "Send Authorization: Bearer <METRICS_TOKEN>."
    elif not settings.DEBUG:
        return 404, "not_found", "Metrics are disabled: set METRICS_TOKEN to enable them."
    return None


def metrics_view(request):
    refused = _refusal(request.META.get("HTTP_AUTHORIZATION", ""))
    if refused:
        response = error_response(*refused)
        if refused[0] == 401:
            response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(generate_latest(_Exposition()), content_type=CONTENT_TYPE_LATEST)


def worker_metrics_app(environ, start_response):
    """``/metrics`` of a task worker (``manage.py run_worker``), as a WSGI app: the numbers
    its worker processes recorded (follow-ups sent, embedding and model calls made by
    tasks), which the web's ``/metrics`` cannot see: they are other processes, usually in
    another container. Same protection as the web's; no queue gauges (the web has them)."""
    if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
        refused = (404, "not_found", "Worker metrics are at /metrics.")
    else:
        refused = _refusal(environ.get("HTTP_AUTHORIZATION", ""))
    if refused:
        status, code, message = refused
        headers = [("Content-Type", "application/json")]
        if status == 401:
            headers.append(("WWW-Authenticate", "Bearer"))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [json.dumps(error_body(code, message)).encode()]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [generate_latest(_Exposition(queue_gauges=False))]


def serve_worker_metrics(port: int, host: str = "0.0.0.0"):
    """Serve ``worker_metrics_app`` on a daemon thread of this process; returns the server
    (``shutdown()`` stops it). Its worker processes must write to ``PROMETHEUS_MULTIPROC_DIR``,
    or this process would only see its own, empty, registry."""
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format, *args):  # a scrape every few seconds is not news
            pass

    server = make_server(host, port, worker_metrics_app, server_class=Server, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server
