"""``/health``: whether the service can do its work. 200 only when the database (with pgvector) answers and every
task queue's cluster has beaten lately; 503 otherwise, with what is wrong in the body."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_project.errors import DATABASE_RETRY_AFTER
from agent_project.lib.llm import model_label
from agent_project.schedules import HEARTBEAT_FUNC, SCHEDULES

#: a heartbeat is due every minute and the cluster's scheduler looks every 30 s: this is two beats missed
HEARTBEAT_STALE_AFTER = timedelta(minutes=3)
#: queue -> the name of its heartbeat schedule, which is also the group of the tasks it creates
HEARTBEATS = {spec.get("queue", "realtime"): spec["name"] for spec in SCHEDULES if spec["func"] == HEARTBEAT_FUNC}


def _database() -> dict:
    with connection.cursor() as cur:
        cur.execute("SELECT extname, extversion FROM pg_extension WHERE extname IN ('vector', 'pg_trgm')")
        extensions = dict(cur.fetchall())
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    return {
        "ok": "vector" in extensions,
        "server_version": version,
        "vector": extensions.get("vector"),
        "pg_trgm": extensions.get("pg_trgm"),
        "embedded": settings.EMBEDDED_PG is not None,
    }


def _worker() -> dict:
    """Per queue, when its cluster last ran its heartbeat; ok when every queue's is fresh."""
    from django_q.models import Success

    queues = {}
    for queue, schedule in HEARTBEATS.items():
        last = (Success.objects.filter(func=HEARTBEAT_FUNC, group=schedule).order_by("-stopped")
                .values_list("stopped", flat=True).first())
        queues[queue] = {"ok": bool(last and timezone.now() - last < HEARTBEAT_STALE_AFTER),
                         "last_heartbeat": last.isoformat() if last else None}
    return {
        "ok": all(q["ok"] for q in queues.values()),
        "queues": queues,
        "broker": "redis" if settings.REDIS_URL else "orm",
    }


def _embedding() -> dict:
    """The configured embedder (built as the web worker's warm-up builds it) and how many tenants still have
    chunks another model embedded (``kb_reembed --all-tenants`` moves them; docs/ops.md)."""
    from agent_project.lib.embeddings import EmbeddingError, get_embedder

    report = {"provider": settings.EMBEDDING_PROVIDER, "dimensions": settings.EMBEDDING_DIMENSIONS}
    try:
        report["model"] = get_embedder().name
    except EmbeddingError as exc:
        return {**report, "model": settings.EMBEDDING_MODEL_NAME, "error": str(exc)}
    try:
        with connection.cursor() as cur:  # every tenant's row: an installation-wide count, no tenant's data
            cur.execute("SELECT count(*) FROM knowledge_corpusstats WHERE chunk_count > "
                        "coalesce((models ->> %s)::bigint, 0)", [report["model"]])
            report["tenants_not_reembedded"] = cur.fetchone()[0]
    except DatabaseError:
        report["tenants_not_reembedded"] = None
    return report


def providers() -> dict:
    return {"llm": model_label(), "embedding": _embedding()}


class HealthView(APIView):
    """200 when the service can do its work; 503 otherwise. The status says how bad it is: "unavailable" (no
    database: nothing works), "degraded" (a queue's worker has not beaten: chat answers, but follow-ups or uploads
    wait). A load balancer that should keep sending chat traffic to a degraded web process checks
    ``database.ok`` in the body."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(auth=[], responses={200: dict, 503: dict})
    def get(self, request):
        try:
            database = _database()
        except Exception as exc:  # the database being down is exactly what this reports
            database = {"ok": False, "error": exc.__class__.__name__}
        try:
            worker = _worker() if database["ok"] else {"ok": False}
        except Exception as exc:
            worker = {"ok": False, "error": exc.__class__.__name__}
        status = "ok" if database["ok"] and worker["ok"] else ("degraded" if database["ok"] else "unavailable")
        body = {"status": status, "database": database, "worker": worker, **providers(),
                "time": timezone.now().isoformat()}
        if not database["ok"]:
            return Response(body, status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})
        return Response(body, status=200 if worker["ok"] else 503)
