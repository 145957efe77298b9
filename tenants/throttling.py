"""The API's rate limits: which buckets a request spends, and the DRF throttle that refuses it.

Buckets: one per API key (the global key has its own, optional, budget) and one
per tenant (all of a tenant's keys together), each per scope: ``default`` for
every route, and stricter ``chat`` and ``upload`` scopes that views opt into with
``throttle_scope = "chat"`` / ``"upload"``. A tenant's own limits
(``Tenant.rate_limit_per_minute`` etc.) override the deployment defaults.

The counting itself (the sliding window, the shared Redis or PostgreSQL store, failing
open) is ``agent_project.lib.ratelimit``, which knows nothing of keys or tenants: this
module names the buckets and their limits and hands them over.
"""

from __future__ import annotations

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from agent_project import metrics
from agent_project.errors import ApiError
from agent_project.lib.ratelimit import Bucket, Decision, headers_for, limit
from tenants.auth import ApiClient
from tenants.models import Tenant

SCOPES = ("default", "chat", "upload")
_SCOPE_FIELDS = {"default": "rate_limit_per_minute", "chat": "chat_rate_limit_per_minute",
                 "upload": "upload_rate_limit_per_minute"}
_SCOPE_SETTINGS = {"default": "RATE_LIMIT_DEFAULT_PER_MINUTE", "chat": "RATE_LIMIT_CHAT_PER_MINUTE",
                   "upload": "RATE_LIMIT_UPLOAD_PER_MINUTE"}
_TENANT_CACHE_SECONDS = 10.0  # a changed tenant limit takes effect within this long
_tenant_limits: dict[str, tuple[float, dict]] = {}


def tenant_limits(tenant_id: str) -> dict[str, int]:
    """Per-minute limits per scope for a tenant, its own values over the defaults."""
    now = time.monotonic()
    cached = _tenant_limits.get(tenant_id)
    if cached and now - cached[0] < _TENANT_CACHE_SECONDS:
        return cached[1]
    row = Tenant.objects.filter(pk=tenant_id).values(*_SCOPE_FIELDS.values()).first() or {}
    limits = {scope: row.get(field) or getattr(settings, _SCOPE_SETTINGS[scope])
              for scope, field in _SCOPE_FIELDS.items()}
    _tenant_limits[tenant_id] = (now, limits)
    return limits


def tenant_limits_forget(tenant_id: str | None = None) -> None:
    if tenant_id is None:
        _tenant_limits.clear()
    else:
        _tenant_limits.pop(tenant_id, None)


def buckets_for(*, client: ApiClient, tenant_id: str | None, scope: str) -> list[Bucket]:
    buckets = []
    if tenant_id:
        per_minute = tenant_limits(tenant_id)[scope]
        if not client.is_global:
            buckets.append(Bucket(f"key:{client.key_id}:{scope}", per_minute))
        buckets.append(Bucket(f"tenant:{tenant_id}:{scope}", per_minute))
    if client.is_global and settings.RATE_LIMIT_GLOBAL_KEY_PER_MINUTE:
        buckets.append(Bucket(f"key:global:{scope}", settings.RATE_LIMIT_GLOBAL_KEY_PER_MINUTE))
    return buckets


def _tenant_of(request, view, client: ApiClient) -> str | None:
    if not client.is_global:
        return client.tenant_id
    # The global key names its tenant in the path or X-Tenant-Id. The body is not read
    # here: parsing an upload only to refuse it would waste the very work we limit.
    named = {v for v in (getattr(view, "kwargs", {}).get("tenant_id"),
                         request.META.get("HTTP_X_TENANT_ID", "").strip()) if v}
    return named.pop() if len(named) == 1 else None


def check(request, view) -> Decision | None:
    client = getattr(request, "user", None)
    if not settings.RATE_LIMIT_ENABLED or not isinstance(client, ApiClient):
        return None
    scope = getattr(view, "throttle_scope", None)
    scope = scope if scope in SCOPES else "default"
    return limit(buckets_for(client=client, tenant_id=_tenant_of(request, view, client), scope=scope))


class ApiRateThrottle(BaseThrottle):
    """DRF throttle in ``DEFAULT_THROTTLE_CLASSES``: every API view gets it. Over the
    limit it raises the project's 429 JSON error with ``Retry-After`` and
    ``X-RateLimit-*``; admitted requests carry ``X-RateLimit-*`` too (added by
    ``agent_project.lib.ratelimit.RateLimitHeadersMiddleware``)."""

    def allow_request(self, request, view):
        decision = check(request, view)
        if decision is None:
            return True
        request._request.ratelimit = decision
        if not decision.allowed:
            scope = decision.bucket.rsplit(":", 1)[-1]
            metrics.RATE_LIMITED.labels(scope).inc()
            raise ApiError(
                429, "rate_limited",
                f"Too many requests: the limit is {decision.limit} per minute"
                f"{'' if scope == 'default' else f' for {scope}'}. Retry in {decision.reset_seconds}s.",
                details={"limit_per_minute": decision.limit, "scope": scope,
                         "retry_after_seconds": decision.reset_seconds,
                         "bucket": decision.bucket.split(":", 1)[0]},
                headers=headers_for(decision),
            )
        return True

    def wait(self):
        return None
