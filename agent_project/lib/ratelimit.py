"""Rate limiting per API key and per tenant, in a store every web process shares.

The limit is a *sliding window* of one minute (the estimate Cloudflare and
nginx-style limiters use): ``previous_minute_count * (1 - elapsed_fraction) +
current_minute_count``. A request is admitted when that estimate, counting the
request itself, stays within the limit for every bucket it touches; a refused
request is taken back out of the counters, so a client hammering at twice its
rate still gets its rate through instead of being locked out for good.

Buckets: one per API key (the global key has its own, optional, budget) and one
per tenant (all of a tenant's keys together), each per scope: ``default`` for
every route, and stricter ``chat`` and ``upload`` scopes that views opt into with
``throttle_scope = "chat"`` / ``"upload"``. A tenant's own limits
(``Tenant.rate_limit_per_minute`` etc.) override the deployment defaults.

Stores: Redis when ``REDIS_URL`` is set (one pipelined round trip per request),
otherwise PostgreSQL (one ``INSERT ... ON CONFLICT DO UPDATE`` statement on an
UNLOGGED table). Both are shared by every process of the deployment.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.db import connection
from rest_framework.throttling import BaseThrottle

from agent_project.errors import ApiError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
SCOPES = ("default", "chat", "upload")


# --- pure core ------------------------------------------------------------------


def window_of(now: float) -> tuple[int, float]:
    """The index of the current one-minute window and how far into it ``now`` is (0..1)."""
    index = int(now // WINDOW_SECONDS)
    return index, (now - index * WINDOW_SECONDS) / WINDOW_SECONDS


def sliding_estimate(*, previous: int, current: int, elapsed: float) -> float:
    """Requests in the last minute, estimated from two fixed windows."""
    return previous * (1.0 - elapsed) + current


def seconds_until_admitted(*, previous: int, current: int, elapsed: float, limit: int) -> int:
    """How long until one more request fits: the previous window's weight decays
    linearly over this window; once this window is itself full, the wait runs
    into the next one. Whole seconds, at least 1 (``Retry-After`` is an integer)."""
    remaining_window = (1.0 - elapsed) * WINDOW_SECONDS
    if current < limit and previous > 0:
        # Need previous * (1 - e') + current + 1 <= limit  ->  e' >= 1 - (limit - current - 1) / previous
        needed = 1.0 - (limit - current - 1) / previous
        wait = max(0.0, (needed - elapsed) * WINDOW_SECONDS)
        return max(1, math.ceil(min(wait, remaining_window)))
    # This window alone is full: in the next window it becomes "previous" and decays from there.
    if current <= 0:
        return max(1, math.ceil(remaining_window))
    needed_next = max(0.0, 1.0 - (limit - 1) / current)
    return max(1, math.ceil(remaining_window + needed_next * WINDOW_SECONDS))


@dataclass(frozen=True)
class Bucket:
    key: str  # e.g. "key:42:chat" or "tenant:acme:default"
    limit: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # of the tightest bucket
    remaining: int
    reset_seconds: int  # until the tightest bucket has room again / fully refills
    bucket: str


def decide(buckets: list[Bucket], counts: dict[str, tuple[int, int]], elapsed: float) -> Decision:
    """``counts[bucket] = (previous, current)`` with this request already counted in
    ``current``. Admit when every bucket's estimate is within its limit."""
    tightest = None
    for bucket in buckets:
        previous, current = counts[bucket.key]
        estimate = sliding_estimate(previous=previous, current=current, elapsed=elapsed)
        if estimate > bucket.limit:
            wait = seconds_until_admitted(previous=previous, current=current - 1, elapsed=elapsed, limit=bucket.limit)
            return Decision(False, bucket.limit, 0, wait, bucket.key)
        remaining = max(0, math.floor(bucket.limit - estimate))
        if tightest is None or remaining < tightest.remaining:
            # Reset: when the current window closes (the count then starts decaying).
            reset = max(1, math.ceil((1.0 - elapsed) * WINDOW_SECONDS))
            tightest = Decision(True, bucket.limit, remaining, reset, bucket.key)
    return tightest


# --- stores ---------------------------------------------------------------------


class Store(Protocol):
    def hit(self, keys: list[str], window: int) -> dict[str, tuple[int, int]]:
        """Count one request in ``window`` for every key; return (previous, current) per key."""

    def undo(self, keys: list[str], window: int) -> None:
        """Take a refused request back out."""


class RedisStore:
    def __init__(self, url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def _k(self, key: str, window: int) -> str:
        return f"{self.prefix}{key}:{window}"

    def hit(self, keys, window):
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.incr(self._k(key, window))
            pipe.expire(self._k(key, window), WINDOW_SECONDS * 2 + 5)
            pipe.get(self._k(key, window - 1))
        results = pipe.execute()
        return {key: (int(results[i * 3 + 2] or 0), int(results[i * 3])) for i, key in enumerate(keys)}

    def undo(self, keys, window):
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.decr(self._k(key, window))
        pipe.execute()


class DatabaseStore:
    """Counters in ``agent_project_ratelimitcounter`` (UNLOGGED: losing them in a crash
    only forgives a minute of traffic, and skipping the WAL keeps the upsert cheap).

    Both writes take a request's rows in one order, sorted by key, so concurrent requests
    sharing buckets queue behind each other instead of deadlocking."""

    table = "agent_project_ratelimitcounter"

    def hit(self, keys, window):
        current = [f"{k}:{window}" for k in keys]
        previous = [f"{k}:{window - 1}" for k in keys]
        expires = int(time.time()) + WINDOW_SECONDS * 2 + 5
        with connection.cursor() as cur:
            cur.execute(
                f"""
                WITH up AS (
                    INSERT INTO {self.table} (key, count, expires_at)
                    SELECT k, 1, to_timestamp(%s) FROM unnest(%s::text[]) AS k ORDER BY k
                    ON CONFLICT (key) DO UPDATE SET count = {self.table}.count + 1
                    RETURNING key, count
                )
                SELECT key, count FROM up
                UNION ALL
                SELECT key, count FROM {self.table} WHERE key = ANY(%s::text[])
                """,
                [expires, current, previous],
            )
            found = dict(cur.fetchall())
        return {k: (found.get(p, 0), found[c]) for k, c, p in zip(keys, current, previous, strict=True)}

    def undo(self, keys, window):
        # The same statement shape as hit(), rows in the same (sorted) order: an UPDATE ... WHERE key = ANY(...)
        # locked them in index or heap order instead, and deadlocked against a concurrent hit() whose request
        # named its buckets the other way round (the global key names the tenant's first).
        expires = int(time.time()) + WINDOW_SECONDS * 2 + 5
        with connection.cursor() as cur:
            cur.execute(
                f"""
                INSERT INTO {self.table} (key, count, expires_at)
                SELECT k, 0, to_timestamp(%s) FROM unnest(%s::text[]) AS k ORDER BY k
                ON CONFLICT (key) DO UPDATE SET count = {self.table}.count - 1
                """,
                [expires, [f"{k}:{window}" for k in keys]],
            )


try:
    from redis import RedisError

    _STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError,)
except ImportError:  # pragma: no cover - redis is a dependency
    _STORE_ERRORS = ()

_store_lock = threading.Lock()
_stores: dict[tuple, Store] = {}


def get_store() -> Store:
    spec = (settings.REDIS_URL, settings.RATE_LIMIT_KEY_PREFIX)
    with _store_lock:
        if spec not in _stores:
            _stores[spec] = RedisStore(*spec) if settings.REDIS_URL else DatabaseStore()
        return _stores[spec]


def ratelimit_prune() -> int:
    """Delete expired database counters (scheduled; Redis expires its own)."""
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {DatabaseStore.table} WHERE expires_at < now()")
        return cur.rowcount


# --- limits ---------------------------------------------------------------------

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
    from tenants.models import Tenant

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


def buckets_for(*, client, tenant_id: str | None, scope: str) -> list[Bucket]:
    buckets = []
    if tenant_id:
        limit = tenant_limits(tenant_id)[scope]
        if not client.is_global:
            buckets.append(Bucket(f"key:{client.key_id}:{scope}", limit))
        buckets.append(Bucket(f"tenant:{tenant_id}:{scope}", limit))
    if client.is_global and settings.RATE_LIMIT_GLOBAL_KEY_PER_MINUTE:
        buckets.append(Bucket(f"key:global:{scope}", settings.RATE_LIMIT_GLOBAL_KEY_PER_MINUTE))
    return buckets


def _tenant_of(request, view, client) -> str | None:
    if not client.is_global:
        return client.tenant_id
    # The global key names its tenant in the path or X-Tenant-Id. The body is not read
    # here: parsing an upload only to refuse it would waste the very work we limit.
    named = {v for v in (getattr(view, "kwargs", {}).get("tenant_id"),
                         request.META.get("HTTP_X_TENANT_ID", "").strip()) if v}
    return named.pop() if len(named) == 1 else None


def check(request, view) -> Decision | None:
    from tenants.auth import ApiClient

    client = getattr(request, "user", None)
    if not settings.RATE_LIMIT_ENABLED or not isinstance(client, ApiClient):
        return None
    scope = getattr(view, "throttle_scope", None)
    scope = scope if scope in SCOPES else "default"
    buckets = buckets_for(client=client, tenant_id=_tenant_of(request, view, client), scope=scope)
    if not buckets:
        return None
    store = get_store()
    window, elapsed = window_of(time.time())
    keys = [b.key for b in buckets]
    try:
        decision = decide(buckets, store.hit(keys, window), elapsed)
        if not decision.allowed:
            store.undo(keys, window)
    except _STORE_ERRORS:
        # Fail open: an unreachable Redis must not take the whole API down with it.
        logger.exception("Rate-limit store unavailable; admitting the request unlimited")
        return None
    return decision


def headers_for(decision: Decision) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.reset_seconds)
    return headers


class ApiRateThrottle(BaseThrottle):
    """DRF throttle in ``DEFAULT_THROTTLE_CLASSES``: every API view gets it. Over the
    limit it raises the project's 429 JSON error with ``Retry-After`` and
    ``X-RateLimit-*``; admitted requests carry ``X-RateLimit-*`` too (added by
    :class:`RateLimitHeadersMiddleware`)."""

    def allow_request(self, request, view):
        decision = check(request, view)
        if decision is None:
            return True
        request._request.ratelimit = decision
        if not decision.allowed:
            from agent_project import metrics

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


class RateLimitHeadersMiddleware:
    """Adds ``X-RateLimit-*`` to responses of admitted, rate-limited requests."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        decision = getattr(request, "ratelimit", None)
        if decision is not None:
            for name, value in headers_for(decision).items():
                if name not in response:
                    response[name] = value
        return response
