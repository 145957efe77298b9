"""The vector side of a search: which model's vectors a tenant's search compares
(``vector_side``), the plan by tenant size and share of the HNSW graph (``uses_hnsw``), and the
nearest chunks: in process memory (``knowledge.vector_cache``), by an exact scan through the
tenant b-tree, or through HNSW (on a second connection beside the keyword side, ``hnsw_beside``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from agent_project.lib.embeddings import embedder_for_model
from knowledge import vector_cache
from knowledge.db import BesideQuery, send_beside
from knowledge.selectors import filtering

EXACT_SCAN_MAX_CHUNKS = 10_000  # up to this a tenant's vector search is exact (in memory if the cache holds it)


# Above EXACT_SCAN_MAX_CHUNKS, a tenant holding less than HNSW_MIN_SHARE of the graph's chunks is still searched exactly
# in memory, up to this size, if its vectors take at most a quarter of the cache. The HNSW graph serves such a tenant
# badly: most of what the scan meets belongs to others (a graph of 200k chunks; 10k-chunk tenant: p50 15 ms, recall@10
# 0.91; 25k: 6.7 ms; 50k at 25%: 3.3 ms, 100k at 50%: 2.3-3.8 ms), while a matrix product takes 0.6 / 1.4 / 3.4 /
# 10.5 ms.
MEMORY_EXACT_MAX_CHUNKS = 50_000


HNSW_MIN_SHARE = 0.25


# 100: with only big tenants in the graph (migration 0009; the benchmark's graph: its 50% and 10% tenants), the 50%
# tenant's vector recall@10 was 0.975-0.995 at 100 (0.990-1.000 at 120-150, 1.000 at 200) and its hybrid p95
# 9.6-9.8 ms against 10.0-10.4 (150) and 10.7-11.2 (200), two runs each. With every tenant in one graph, 100 had
# given 0.93-0.97: there most of what a scan meets is other tenants' chunks.
HNSW_EF_SEARCH = 100


def nearest(cur, sql: str, params: list, tenant_id, qvec, also: list[int],
             model: str | None = None) -> tuple[list, dict[int, float]]:
    """Run a nearest-neighbour query (rows: id, cosine, search_text, token_count) and, in
    the same round trip, the cosines of the chunks ``also`` names (keyword candidates).
    No text, provenance or title: only the k winners' are fetched, after the fusion
    (for 80 candidates they cost ~1.3 ms more than the extra round trip)."""
    sql = (f"(SELECT *, true FROM ({sql}) nn) UNION ALL "
           f"(SELECT c.id, 1 - (c.embedding <=> %b), NULL, NULL, false FROM knowledge_chunk c "
           f"WHERE (c.tenant_id || '') = %s AND c.id = ANY(%s){' AND c.embedding_model = %s' if model else ''})")
    cur.execute(sql, [*params, qvec, tenant_id, also, *([model] if model else [])])
    rows, extra = [], {}
    for cid, cosine, search_text, length, nearest in cur.fetchall():
        if nearest:
            rows.append((cid, cosine, search_text, length))
        else:
            extra[cid] = float(cosine)
    rows.sort(key=lambda r: (-r[1], r[0]))  # relaxed_order (HNSW) may return slightly out of order; ties: lower id
    return rows, extra


def exact_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model=None) -> tuple[list, dict]:
    # The distance once per row (OFFSET 0 keeps the subquery from being flattened into
    # two evaluations); "+ 0" keeps the planner off the HNSW index; equal distances go
    # to the lower id, as in memory.
    own_sql, own_params = with_model(filter_sql, filter_params, model)
    sql = (f"SELECT id, 1 - distance, search_text, token_count FROM ("
           f"SELECT c.id, c.embedding <=> %b AS distance, c.search_text, c.token_count "
           f"FROM {filtering.from_sql(filter_sql)} WHERE c.tenant_id = %s{own_sql} OFFSET 0) s "
           f"ORDER BY distance + 0, id LIMIT %s")
    return nearest(cur, sql, [qvec, tenant_id, *own_params, limit], tenant_id, qvec, also, model)


def hnsw_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model=None) -> tuple[list, dict]:
    # iterative_scan and ef_search were set by keyword.corpus_stats, for this session
    own_sql, own_params = with_model(filter_sql, filter_params, model)
    sql = (f"SELECT c.id, 1 - (c.embedding <=> %b), c.search_text, c.token_count "
           f"FROM {filtering.from_sql(filter_sql)} WHERE c.tenant_id = %s AND c.in_hnsw{own_sql} "
           f"ORDER BY c.embedding <=> %b LIMIT %s")
    return nearest(cur, sql, [qvec, tenant_id, *own_params, qvec, limit], tenant_id, qvec, also, model)


def with_model(filter_sql: str, filter_params: list, model: str | None) -> tuple[str, list]:
    """The filters plus "vectors of this model only" (a tenant whose chunks two models embedded)."""
    return (filter_sql + " AND c.embedding_model = %s", [*filter_params, model]) if model else (filter_sql, filter_params)


def in_memory(cur, tenant_id: str, version: int, n: int, dims: int) -> vector_cache.TenantVectors | None:
    """The tenant's vectors held in this process (``vector_cache``) for the exact search,
    loaded if this corpus version is not there yet; None when the cache is off or could
    not keep them (they would be loaded again for every search: the exact scan answers)."""
    cache = vector_cache.get_cache()
    if cache is None or not cache.would_hold(n, dims):
        return None
    entry = cache.get(tenant_id, version)
    if entry is None:
        with cache.loading(tenant_id):  # one thread loads, the others wait for its entry
            entry = cache.get(tenant_id, version)
            if entry is None:
                entry = vector_cache.load(cur, tenant_id)
                cache.put(tenant_id, entry)
    return entry


def uses_hnsw(n: int, in_graph: bool, graph: int, dims: int, filtered: bool, tenant_id: str = "") -> bool:
    """Whether a tenant of ``n`` chunks is searched through the HNSW index (else exactly).
    Only a tenant whose chunks are in the graph (``in_graph``: it grew past
    ``EXACT_SCAN_MAX_CHUNKS``) can be. One that is less than ``HNSW_MIN_SHARE`` of the graph's
    ``graph`` chunks stays exact, in memory, while the cache holds its vectors or has room for
    them: loading them evicts nothing (mid-size tenants taking turns would otherwise evict
    each other and reload ~8 ms per 1,000 chunks on every search, where HNSW takes 7-15 ms).
    With filters, or when the cache is off, too small or full, it goes through HNSW (an exact
    scan in PostgreSQL reads ~0.85 us a row: 40 ms at 50k)."""
    if n <= EXACT_SCAN_MAX_CHUNKS or not in_graph:
        return False
    if filtered or n > MEMORY_EXACT_MAX_CHUNKS or n >= HNSW_MIN_SHARE * max(graph, n):
        return True
    cache = vector_cache.get_cache()
    return (cache is None or not cache.would_hold(n, dims, share=0.25)
            or not cache.fits_beside(tenant_id, vector_cache.entry_bytes(n, dims)))


def vector_candidates(cur, tenant_id, qvec, limit, hnsw: bool, filter_sql, filter_params,
                       also: list[int], model: str | None = None) -> tuple[list, dict[int, float], str]:
    """The tenant's ``limit`` nearest chunks (of ``model`` only, when given), the cosines of
    ``also`` and the plan used, in the database: an exact scan for a small tenant, HNSW for a
    big one."""
    if not hnsw:
        return *exact_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model), "exact"
    rows, extra = hnsw_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model)
    if len(rows) < limit:
        # The index ran out (a very selective filter): the exact scan knows the truth.
        return *exact_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model), "exact-fallback"
    return rows, extra, "hnsw"


#: Whether this process's last search of each tenant went through HNSW: a big tenant's HNSW
#: search starts before its statistics are read (the plan is checked when they arrive).
tenant_plans: dict[str, bool] = {}


def parallel(hnsw: bool, use_keyword: bool, use_vector: bool, filter_sql: str) -> bool:
    """Run a big tenant's HNSW search on a second connection while the keyword side runs
    on this one (``KB_PARALLEL_VECTOR_SEARCH``). Not inside a transaction: the second
    connection would not see its writes."""
    return (use_keyword and use_vector and hnsw and not filter_sql
            and getattr(settings, "KB_PARALLEL_VECTOR_SEARCH", True) and not connection.in_atomic_block)


def hnsw_beside(sent: contextlib.ExitStack, tenant_id, qvec, limit, ef_search, filter_sql,
                 filter_params) -> BesideQuery | None:
    """The HNSW search sent on another connection (closed with ``sent``): ids, cosines and
    search terms only (the text of the winners comes from this connection: the detail
    columns and the documents join cost the side query ~1 ms)."""
    query = send_beside(
        f"SELECT c.id, 1 - (c.embedding <=> %b), c.search_text, c.token_count FROM {filtering.from_sql(filter_sql)} "
        f"WHERE c.tenant_id = %s AND c.in_hnsw{filter_sql} ORDER BY c.embedding <=> %b LIMIT %s",
        [qvec, tenant_id, *filter_params, qvec, limit],
        # set once per connection (ef_search is the same for every k up to MAX_K)
        session={"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": str(ef_search)},
    )
    return None if query is None else sent.enter_context(query)


@dataclass(frozen=True)
class VectorSide:
    """Whose vectors a tenant's search compares: ``embedder`` makes query vectors of the model
    the tenant's chunks have (None: by keyword only); ``model``: only chunks of that model are
    compared (the tenant's chunks were embedded by several); ``note``: said in the plan."""
    embedder: object | None
    model: str | None = None
    note: str = ""


def vector_side(models: dict[str, int], n: int, embedder) -> VectorSide:
    """The vector side of a search of a tenant whose chunks ``models`` embedded (``CorpusStats.models``):
    the configured embedder when they are all its, else the model most of them have that this
    process can run (``embedder_for_model``), comparing only that model's chunks. Vectors of two
    models are never compared; chunks of a model that cannot be run are found by keyword until
    ``kb_reembed`` moves them."""
    if not models or models.get(embedder.name, 0) >= n:
        return VectorSide(embedder)
    for name, count in sorted(models.items(), key=lambda item: (-item[1], item[0] != embedder.name, item[0])):
        other = embedder_for_model(name)
        if other is None:
            continue
        mixed = len(models) > 1
        if other is embedder:
            note = f"{count} of {n} chunks compared by vector; the rest are searched by keyword until kb_reembed"
        else:
            note = (f"vectors of {name}{f' ({count} of {n} chunks)' if mixed else ''}: not yet re-embedded "
                    f"with {embedder.name}")
        return VectorSide(other, name if mixed else None, note)
    return VectorSide(None, None, f"keyword-only: the chunks' vectors ({', '.join(sorted(models))}) cannot be "
                                  f"compared with {embedder.name}'s; run kb_reembed")
