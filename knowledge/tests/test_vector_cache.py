"""The per-process cache of small tenants' vectors: exact ranking, versions, LRU bound."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge import vector_cache
from knowledge.vector_cache import TenantVectors, VectorCache, get_cache


def _entry(version=1, n=50, dims=8, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    ids = list(range(100, 100 + n)) if ids is None else ids
    return TenantVectors.build(version, ids, rng.normal(size=(len(ids), dims)))


def test_nearest_is_the_exact_cosine_ranking():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(200, 16)) * rng.uniform(0.1, 10, size=(200, 1))  # lengths differ
    ids = rng.permutation(np.arange(1000, 1200)).tolist()
    entry = TenantVectors.build(7, ids, vectors)
    query = rng.normal(size=16)
    cosines = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    expected = [ids[i] for i in np.argsort(-cosines)[:10]]
    nearest, extra = entry.nearest(query, 10, also=[ids[0], ids[5], 99999])
    assert [cid for cid, _ in nearest] == expected
    assert [c for _, c in nearest] == pytest.approx(sorted(cosines, reverse=True)[:10], abs=1e-5)
    assert set(extra) == {ids[0], ids[5]}  # an id of no chunk of this tenant is not there
    assert extra[ids[5]] == pytest.approx(cosines[5], abs=1e-5)


def test_nearest_returns_everything_when_asked_for_more_and_breaks_ties_by_id():
    entry = TenantVectors.build(1, [30, 10, 20], [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    nearest, _ = entry.nearest(np.array([2.0, 0.0]), 10)
    assert [cid for cid, _ in nearest] == [10, 30, 20]
    assert TenantVectors.build(1, [], np.zeros((0, 4))).nearest(np.ones(4), 5) == ([], {})


def test_a_zero_vector_scores_zero_instead_of_failing():
    entry = TenantVectors.build(1, [1, 2], [[0.0, 0.0], [1.0, 0.0]])
    nearest, _ = entry.nearest(np.array([1.0, 0.0]), 2)
    assert nearest == [(2, pytest.approx(1.0)), (1, 0.0)]


def test_an_entry_is_used_only_at_its_version():
    cache = VectorCache(max_bytes=10_000_000)
    cache.put("t1", _entry(version=5))
    assert cache.get("t1", 5) is not None
    assert cache.get("t1", 6) is None and cache.get("t2", 5) is None
    cache.put("t1", _entry(version=6))
    assert cache.get("t1", 5) is None and cache.get("t1", 6).version == 6
    assert cache.size_bytes == _entry(version=6).nbytes  # replaced, not added


def test_least_recently_used_tenants_are_evicted_beyond_the_budget():
    size = _entry().nbytes
    cache = VectorCache(max_bytes=int(size * 2.5))
    cache.put("a", _entry())
    cache.put("b", _entry())
    assert cache.get("a", 1) is not None  # a is now the most recent
    cache.put("c", _entry())
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.size_bytes <= cache.max_bytes
    cache.put("huge", _entry(n=5000))  # bigger than the whole budget: not kept, nothing evicted for it
    assert "huge" not in cache and "a" in cache and "c" in cache


def test_would_hold_compares_the_entrys_size_with_the_budget():
    cache = VectorCache(max_bytes=_entry(n=100).nbytes * 4)
    assert _entry(n=100).nbytes == vector_cache.entry_bytes(100, _entry(n=100).matrix.shape[1])
    assert cache.would_hold(400, _entry().matrix.shape[1]) and not cache.would_hold(401, _entry().matrix.shape[1])
    assert cache.would_hold(100, _entry().matrix.shape[1], share=0.25)
    assert not cache.would_hold(101, _entry().matrix.shape[1], share=0.25)


def test_the_budget_comes_from_settings_and_zero_turns_it_off(settings):
    settings.KB_VECTOR_CACHE_MB = 3
    assert get_cache().max_bytes == 3 * 1024 * 1024
    settings.KB_VECTOR_CACHE_MB = 0
    assert get_cache() is None


def test_numpy_blas_runs_on_one_thread_once_the_cache_searches():
    from threadpoolctl import threadpool_info

    _entry().nearest(np.ones(8), 3)
    # numpy's own OpenBLAS (the one the product uses; scipy, loaded later by other tests, has its own)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas" and "numpy" in pool["filepath"]]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_threads_meeting_a_new_version_load_it_once(monkeypatch):
    """Every web thread of a process searching a tenant just written to: one loads, the others wait for
    its entry (each had loaded a copy, past the cache's budget meanwhile)."""
    import threading
    import time

    from knowledge import selectors

    cache = VectorCache(max_bytes=10 ** 9)
    monkeypatch.setattr(vector_cache, "get_cache", lambda: cache)
    loads = []

    def slow_load(cur, tenant_id):
        loads.append(tenant_id)
        time.sleep(0.2)
        return _entry(version=7)

    monkeypatch.setattr(vector_cache, "load", slow_load)
    start, found = threading.Barrier(4), []

    def search():
        start.wait()
        found.append(selectors.vector.in_memory(None, "tenant-a", 7, 50, 8))

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert loads == ["tenant-a"] and len(found) == 4 and len({id(entry) for entry in found}) == 1
    assert cache._loading == {}  # the per-tenant load locks do not pile up
