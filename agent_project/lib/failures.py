"""Counters of failed attempts, for throttling guessers: invalid API keys per client
address (``tenants.auth``) and wrong admin passwords per user name and address
(``agent_project.adminlogin``).

A counter starts at the first failure and lives ``window`` seconds from then (a fixed
window, so a locked-out guesser is locked out for that long whatever it keeps sending).
It is kept where every web process sees it, beside the rate-limit counters: Redis when
``REDIS_URL`` is set (``SET NX EX`` + ``INCR``), otherwise the UNLOGGED
``agent_project_ratelimitcounter`` table (one upsert; its ``ratelimit-prune`` schedule
deletes expired rows; ``clock_timestamp()``, not ``now()``, which stands still inside a
transaction). An unreachable Redis fails open (logged), as the rate limiter
does: a Redis outage must not lock every client out.
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.db import connection
from redis import RedisError

logger = logging.getLogger(__name__)

_TABLE = "agent_project_ratelimitcounter"


def _name(key: str) -> str:
    return f"fail:{key}"


def _redis():
    from agent_project.lib.ratelimit import get_store

    return get_store()  # RedisStore when REDIS_URL is set


def failure_record(key: str, *, window: int) -> tuple[int, int]:
    """Count one failure under ``key``: ``(failures in the window, seconds until it ends)``."""
    try:
        if settings.REDIS_URL:
            store = _redis()
            name = store.prefix + _name(key)
            pipe = store.redis.pipeline(transaction=True)
            pipe.set(name, 0, ex=window, nx=True)  # the window starts at the first failure
            pipe.incr(name)
            pipe.ttl(name)
            _, count, ttl = pipe.execute()
            return int(count), max(int(ttl), 1)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {_TABLE} AS c (key, count, expires_at) VALUES (%s, 1, clock_timestamp() + make_interval(secs => %s))
                ON CONFLICT (key) DO UPDATE SET
                    count = CASE WHEN c.expires_at <= clock_timestamp() THEN 1 ELSE c.count + 1 END,
                    expires_at = CASE WHEN c.expires_at <= clock_timestamp() THEN EXCLUDED.expires_at ELSE c.expires_at END
                RETURNING count, extract(epoch FROM expires_at - clock_timestamp())
                """,
                [_name(key), window],
            )
            count, left = cursor.fetchone()
            return int(count), max(math.ceil(left), 1)
    except RedisError:
        logger.exception("failure counter unavailable; not throttling")
        return 0, 0


def failure_count(key: str) -> tuple[int, int]:
    """``(failures in the current window, seconds until it ends)``; ``(0, 0)`` when none."""
    try:
        if settings.REDIS_URL:
            store = _redis()
            name = store.prefix + _name(key)
            pipe = store.redis.pipeline(transaction=False)
            pipe.get(name)
            pipe.ttl(name)
            count, ttl = pipe.execute()
            return (int(count), max(int(ttl), 1)) if count else (0, 0)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count, extract(epoch FROM expires_at - clock_timestamp()) FROM {_TABLE} "
                           "WHERE key = %s AND expires_at > clock_timestamp()", [_name(key)])
            row = cursor.fetchone()
            return (int(row[0]), max(math.ceil(row[1]), 1)) if row else (0, 0)
    except RedisError:
        logger.exception("failure counter unavailable; not throttling")
        return 0, 0


def failure_reset(key: str) -> None:
    """Forget ``key``'s failures (a successful login)."""
    if settings.REDIS_URL:
        store = _redis()
        store.redis.delete(store.prefix + _name(key))
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_TABLE} WHERE key = %s", [_name(key)])


def client_address(request) -> str:
    """The client's address: the connection's, or with ``REST_FRAMEWORK["NUM_PROXIES"]`` that
    many entries from the end of ``X-Forwarded-For`` (never a header the client wrote alone)."""
    from rest_framework.throttling import BaseThrottle

    return BaseThrottle().get_ident(request) or "unknown"


def retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(max(int(seconds), 1))}
