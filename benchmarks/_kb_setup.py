"""Shared bootstrap for the knowledge benchmarks: Django on the benchmark database
(var/pg-bench unless EMBEDDED_PG_DIR says otherwise), migrated, quiet."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


def setup_django(provider: str | None = None) -> None:
    """Configure Django once per process (``make bench`` runs every script in one
    process) and select the embedding provider for this benchmark."""
    sys.path.insert(0, str(ROOT))
    if provider:
        os.environ["EMBEDDING_PROVIDER"] = provider
    os.environ.setdefault("EMBEDDED_PG_DIR", str(ROOT / "var" / "pg-bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_project.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("MEDIA_ROOT", str(ROOT / "var" / "bench-media"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    if provider:
        settings.EMBEDDING_PROVIDER = provider

    call_command("migrate", verbosity=0)


def fresh_tenant(tenant_id: str):
    from tenants.models import Tenant

    Tenant.objects.filter(pk=tenant_id).delete()
    return Tenant.objects.create(pk=tenant_id, name=tenant_id)


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)

