"""Rate limiting (agent_project.lib.ratelimit): the sliding-window core (table-driven) and
both shared stores. What the API does with it (the 429 answer, per-tenant overrides and
scopes, one limit across two processes): tenants/tests/test_throttling.py."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from agent_project.lib import ratelimit
from agent_project.lib.ratelimit import Bucket, decide, seconds_until_admitted, sliding_estimate, window_of


# --- pure core ----------------------------------------------------------------------

@pytest.mark.parametrize("now, index, elapsed", [
    (0.0, 0, 0.0), (59.0, 0, 59 / 60), (60.0, 1, 0.0), (90.0, 1, 0.5), (1_700_000_010.0, 28_333_333, 0.5),
])
def test_window_of(now, index, elapsed):
    assert window_of(now) == (index, pytest.approx(elapsed))


@pytest.mark.parametrize("previous, current, elapsed, estimate", [
    (0, 5, 0.3, 5.0),         # nothing before: just this window
    (10, 0, 0.0, 10.0),       # window just turned: the previous one counts in full
    (10, 2, 0.5, 7.0),        # half-way: half of the previous one
    (10, 4, 0.99, 4.1),       # nearly through: the previous one has almost decayed
])
def test_sliding_estimate(previous, current, elapsed, estimate):
    assert sliding_estimate(previous=previous, current=current, elapsed=elapsed) == pytest.approx(estimate)


@pytest.mark.parametrize("previous, current, elapsed, limit, wait", [
    (0, 10, 0.5, 10, 30 + 6),   # window full: into the next, until 1 - 9/10 of it has passed
    (10, 5, 0.5, 10, 6),        # 10*(1-e') + 5 + 1 <= 10 -> e' >= 0.6 -> 6 s from now
    (20, 0, 0.0, 10, 33),       # 20*(1-e') + 1 <= 10 -> e' >= 0.55 -> 33 s
    (10, 9, 0.0, 10, 60),       # this window's 9 plus one more: only once the previous is gone
    (0, 1, 0.999, 1, 61),       # limit 1, used: the previous window must decay completely
    (5, 0, 0.99, 5, 1),         # room already (decayed): never less than one second
])
def test_seconds_until_admitted(previous, current, elapsed, limit, wait):
    assert seconds_until_admitted(previous=previous, current=current, elapsed=elapsed, limit=limit) == wait


@pytest.mark.parametrize("counts, allowed, bucket, remaining", [
    ({"key": (0, 1), "tenant": (0, 1)}, True, "key", 4),
    ({"key": (0, 3), "tenant": (0, 9)}, True, "tenant", 1),      # the tightest bucket is reported
    ({"key": (0, 6), "tenant": (0, 6)}, False, "key", 0),        # the first bucket over its limit refuses
    ({"key": (0, 2), "tenant": (10, 8)}, False, "tenant", 0),    # 10 * 0.5 + 8 > 10
])
def test_decide(counts, allowed, bucket, remaining):
    decision = decide([Bucket("key", 5), Bucket("tenant", 10)], counts, elapsed=0.5)
    assert (decision.allowed, decision.bucket, decision.remaining) == (allowed, bucket, remaining)
    assert decision.reset_seconds >= 1


# --- stores -------------------------------------------------------------------------

@pytest.fixture(params=["database", "redis"])
def store(request, ratelimited, db):
    if request.param == "redis":
        return ratelimit.RedisStore(request.getfixturevalue("redis_url"), ratelimited.RATE_LIMIT_KEY_PREFIX)
    return ratelimit.DatabaseStore()


def test_store_counts_undoes_and_reads_the_previous_window(store):
    assert store.hit(["a", "b"], 100) == {"a": (0, 1), "b": (0, 1)}
    assert store.hit(["a"], 100) == {"a": (0, 2)}
    store.undo(["a"], 100)
    assert store.hit(["a"], 100) == {"a": (0, 2)}
    assert store.hit(["a", "b"], 101) == {"a": (2, 1), "b": (1, 1)}


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_sharing_buckets_never_deadlock(ratelimited):
    """A tenant's key names its buckets key-first, the global key (with a budget of its own) tenant-first: requests
    of both, admitted (hit) and refused (hit, then undo) at once, used to lock the shared rows in opposite orders
    and die with `deadlock detected` (503 write_conflict). Every thread's own connection, as web threads have."""
    import threading

    from django.db import connections

    from tenants.auth import ApiClient
    from tenants.throttling import buckets_for

    ratelimited.RATE_LIMIT_GLOBAL_KEY_PER_MINUTE = 5
    orders = [[b.key for b in buckets_for(client=client, tenant_id="acme", scope="default")]
              for client in (ApiClient(tenant_id="acme", key_id=7, key_prefix="sk_live_x"),
                             ApiClient(tenant_id=None, key_id=None, key_prefix=""))]
    assert orders[0][-1] == orders[1][0] == "tenant:acme:default"  # the shared bucket, at opposite ends
    orders.append(list(reversed(orders[1])))
    store, window, errors = ratelimit.DatabaseStore(), 4242, []

    def requests(keys):
        try:
            for _ in range(150):
                store.hit(keys, window)
                store.undo(keys, window)  # refused: taken back out
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=requests, args=(orders[i % 3],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Every hit was undone: all counters are back to zero.
    assert set(store.hit(sorted({k for keys in orders for k in keys}), window + 1).values()) == {(0, 1)}


def test_database_prune_deletes_expired_counters(ratelimited, db):
    store = ratelimit.DatabaseStore()
    store.hit(["x"], 5)
    with connection.cursor() as cur:
        cur.execute(f"UPDATE {store.table} SET expires_at = now() - interval '1 second'")
    store.hit(["y"], 5)
    assert ratelimit.ratelimit_prune() == 1
    assert store.hit(["x", "y"], 5) == {"x": (0, 1), "y": (0, 2)}


def test_counter_table_is_unlogged(db):
    with connection.cursor() as cur:
        cur.execute("SELECT relpersistence FROM pg_class WHERE relname = %s", [ratelimit.DatabaseStore.table])
        assert cur.fetchone() == ("u",)


# --- limit(): any caller's buckets --------------------------------------------------

def test_limit_admits_within_every_bucket_and_takes_a_refusal_back(ratelimited, db):
    narrow, wide = Bucket("caller:narrow", 2), Bucket("caller:wide", 10)
    decisions = [ratelimit.limit([narrow, wide]) for _ in range(3)]
    assert [(d.allowed, d.bucket, d.remaining) for d in decisions] == [
        (True, "caller:narrow", 1), (True, "caller:narrow", 0), (False, "caller:narrow", 0)]
    window, _ = window_of(time.time())
    counts = ratelimit.get_store().hit(["caller:narrow", "caller:wide"], window)
    # Two admitted plus this probe (a window boundary may move them to "previous"): the refusal was undone.
    assert all(prev + cur == 3 for prev, cur in counts.values()), counts


def test_limit_without_buckets_limits_nothing(ratelimited, db):
    assert ratelimit.limit([]) is None
