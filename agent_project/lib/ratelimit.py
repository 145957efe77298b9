"""Sliding-window rate limiting of named buckets, in a store every web process shares.

The limit is a *sliding window* of one minute (the estimate Cloudflare and
nginx-style limiters use): ``previous_minute_count * (1 - elapsed_fraction) +
current_minute_count``. A request is admitted when that estimate, counting the
request itself, stays within the limit for every bucket it touches; a refused
request is taken back out of the counters, so a client hammering at twice its
rate still gets its rate through instead of being locked out for good.

A bucket is a key string and its limit per minute; the caller names them
(``limit(buckets)``). Which buckets an API request spends (per key, per tenant,
per scope) is the API's business: ``tenants.throttling``, the DRF throttle.

Stores: Redis when ``REDIS_URL`` is set (one pipelined round trip per request),
otherwise PostgreSQL (one ``INSERT ... ON CONFLICT DO UPDATE`` statement on an
UNLOGGED table). Both are shared by every process of the deployment.

Imports nothing of the apps: no tenant, no API key, no view.
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

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


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


# --- limiting -------------------------------------------------------------------


def limit(buckets: list[Bucket]) -> Decision | None:
    """Count one request in every bucket and decide; a refused request is taken back out.
    None when there is nothing to limit, or when the store cannot be reached."""
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


class RateLimitHeadersMiddleware:
    """Adds ``X-RateLimit-*`` to responses of admitted, rate-limited requests (the
    decision a throttle left on the request as ``request.ratelimit``)."""

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
