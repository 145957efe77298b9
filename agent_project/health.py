from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_project.lib.llm import model_label

HEARTBEAT_FUNC = "agent_project.tasks.heartbeat"
HEARTBEAT_STALE_AFTER = timedelta(minutes=3)


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
    from django_q.models import Success

    last = Success.objects.filter(func=HEARTBEAT_FUNC).order_by("-stopped").values_list("stopped", flat=True).first()
    fresh = bool(last and timezone.now() - last < HEARTBEAT_STALE_AFTER)
    return {
        "ok": fresh,
        "last_heartbeat": last.isoformat() if last else None,
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
    """200 when the service can serve requests (database and pgvector reachable); 503 otherwise.
    A stale worker heartbeat makes the status "degraded": chat still works, background jobs wait."""

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
        return Response(body, status=200 if database["ok"] else 503)
