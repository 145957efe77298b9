"""Small tenants' vectors in process memory, for an exact nearest-neighbour search
without a database scan.

A tenant on the exact plan (up to ``selectors.vector.EXACT_SCAN_MAX_CHUNKS``, or up to
``selectors.vector.MEMORY_EXACT_MAX_CHUNKS`` for a small share of the HNSW graph) is searched here
instead of by PostgreSQL, when its vectors fit (``VectorCache.would_hold``): the
scan read every one of the tenant's rows for each query (3.4 ms for 4,000 chunks on
this machine, ~0.85 us a row, most of it heap access), while one matrix product over
the same vectors takes ~0.2 ms.
The entry is keyed by the tenant's ``CorpusStats.version``, which the search reads
anyway and which every change to the tenant's chunks or vectors moves, so a stale
entry is never used: the next search after a change reloads it (~8 ms per 1,000
chunks). Entries are evicted least-recently-used beyond ``KB_VECTOR_CACHE_MB``
per process (0 turns the cache off).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings


@functools.cache
def _blas_one_thread() -> None:
    """numpy's OpenBLAS runs a 10k x 384 product on both cores and its threads then spin
    for a while waiting for more work, taking the CPU from the database writes that follow
    in the same request and from the other web worker: measured with the chat benchmark,
    the store steps' p95 went from 3.6 / 2.0 ms to 10.3 / 9.7 and throughput at
    concurrency 4 fell from 76 to 51 req/s. One thread does the product in well under
    a millisecond. (torch and onnxruntime keep their own thread pools.)"""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def entry_bytes(n: int, dims: int) -> int:
    """What ``n`` vectors of ``dims`` take in the cache: ids, matrix and the id -> row dict (~100 bytes a key)."""
    return n * (8 + 4 * dims + 100)


@dataclass(frozen=True)
class TenantVectors:
    version: int
    ids: np.ndarray  # int64, (n,)
    matrix: np.ndarray  # float32, (n, dims), rows of unit length
    position: dict[int, int] = field(repr=False)

    @classmethod
    def build(cls, version: int, ids, vectors) -> TenantVectors:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return cls(version=version, ids=ids, matrix=np.zeros((0, 0), dtype=np.float32), position={})
        order = np.argsort(ids, kind="stable")  # ties between equal scores go to the lower id
        ids = ids[order]
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)[order]
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return cls(version=version, ids=ids, matrix=np.ascontiguousarray(matrix, dtype=np.float32),
                   position={int(cid): i for i, cid in enumerate(ids.tolist())})

    @property
    def nbytes(self) -> int:
        return entry_bytes(len(self.ids), self.matrix.shape[1] if self.matrix.ndim == 2 else 0)

    def _cosines(self, query: np.ndarray) -> np.ndarray:
        _blas_one_thread()
        query = np.asarray(query, dtype=np.float32)
        return self.matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))

    def nearest(self, query: np.ndarray, limit: int, also=()) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """The ``limit`` nearest chunks as (id, cosine), best first (equal scores: lower
        id first), and the cosines of the chunks ``also`` names that this tenant has."""
        found, cosines_of = self.search(query, limit)
        return found, cosines_of(also)

    def search(self, query: np.ndarray, limit: int):
        """``nearest`` without ``also``, and a function giving the cosines of other chunks
        later (the search knows which once the keyword side has answered)."""
        if not len(self.ids):
            return [], lambda ids: {}
        scores = self._cosines(query)
        limit = min(limit, len(scores))
        top = np.argpartition(-scores, limit - 1)[:limit] if limit < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]

        def cosines_of(ids) -> dict[int, float]:
            return {int(cid): float(scores[self.position[cid]]) for cid in ids if cid in self.position}

        return [(int(self.ids[i]), float(scores[i])) for i in top], cosines_of


class VectorCache:
    """Per-process LRU of ``TenantVectors`` by tenant, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, TenantVectors] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[str, tuple[threading.Lock, int]] = {}  # tenant -> (its load lock, threads using it)

    @contextmanager
    def loading(self, tenant_id: str):
        """Held while a thread loads the tenant's vectors: the process's other threads searching that
        tenant wait for its entry instead of each loading a copy (a new version after a write, met by
        every web thread at once, had been loaded once per thread, past the cache's budget meanwhile)."""
        with self._lock:
            lock, users = self._loading.get(tenant_id, (None, 0))
            lock = lock or threading.Lock()
            self._loading[tenant_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._loading[tenant_id]
                if users == 1:
                    del self._loading[tenant_id]
                else:
                    self._loading[tenant_id] = (lock, users - 1)

    def get(self, tenant_id: str, version: int) -> TenantVectors | None:
        with self._lock:
            entry = self._entries.get(tenant_id)
            if entry is None or entry.version != version:
                return None
            self._entries.move_to_end(tenant_id)
            return entry

    def put(self, tenant_id: str, entry: TenantVectors) -> None:
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(tenant_id, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[tenant_id] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def would_hold(self, n: int, dims: int, share: float = 1.0) -> bool:
        """Whether ``n`` vectors of ``dims`` fit in ``share`` of the budget. An entry bigger than
        the budget is never kept (it would be loaded again for every search)."""
        return entry_bytes(n, dims) <= share * self.max_bytes

    def fits_beside(self, tenant_id: str, nbytes: int) -> bool:
        """Whether an entry of ``nbytes`` for the tenant fits next to what is held now (its own
        older entry counted as free), evicting nothing."""
        with self._lock:
            old = self._entries.get(tenant_id)
            return self._bytes - (old.nbytes if old is not None else 0) + nbytes <= self.max_bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tenant_id: str) -> bool:
        return tenant_id in self._entries


_cache: VectorCache | None = None
_cache_lock = threading.Lock()


def get_cache() -> VectorCache | None:
    """The process's cache, or None when ``KB_VECTOR_CACHE_MB`` is 0."""
    global _cache
    max_bytes = int(getattr(settings, "KB_VECTOR_CACHE_MB", 256)) * 1024 * 1024
    if max_bytes <= 0:
        return None
    with _cache_lock:
        if _cache is None or _cache.max_bytes != max_bytes:
            _cache = VectorCache(max_bytes)
        return _cache


def load(cur, tenant_id: str) -> TenantVectors:
    """The tenant's vectors as the database has them now, labelled with the version
    read in the same statement (so a change committed meanwhile is never mislabelled)."""
    cur.execute(  # binary results: parsing 384 floats from text cost ~100 us a row
        "SELECT (SELECT version FROM knowledge_corpusstats WHERE tenant_id = %s), c.id, c.embedding "
        "FROM knowledge_chunk c WHERE c.tenant_id = %s",
        [tenant_id, tenant_id], binary=True,
    )
    rows = cur.fetchall()
    if not rows:
        cur.execute("SELECT version FROM knowledge_corpusstats WHERE tenant_id = %s", [tenant_id])
        row = cur.fetchone()
        return TenantVectors.build(row[0] if row else -1, [], np.zeros((0, 0), dtype=np.float32))
    vectors = np.vstack([row[2].to_numpy() for row in rows])
    return TenantVectors.build(rows[0][0], [row[1] for row in rows], vectors)
