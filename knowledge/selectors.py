"""Reading the knowledge base: hybrid chunk search.

``chunk_search`` runs two retrievers inside the tenant and fuses them
(``knowledge.ranking`` explains the fusion):

1. **Keyword (BM25).** The query is analysed like the chunks (Sastrawi stems).
   Document frequencies come from the tenant's ``Term`` table, N and avgdl from
   ``CorpusStats``. Query terms the tenant has never seen are corrected against
   that vocabulary with ``pg_trgm`` (typos). Candidates come from the GIN index
   on the ``simple`` tsvector, asking for the rarest terms first so that a common
   word cannot drag in half the tenant; BM25 is then computed over them.
2. **Vector.** Plan by tenant size and share of the graph (``_uses_hnsw``,
   MEASURED.md): a tenant with at most ``EXACT_SCAN_MAX_CHUNKS`` chunks is searched
   exactly, over its vectors held in process memory (``knowledge.vector_cache``, keyed
   by the corpus version) or, with filters or the cache off, by a scan through the
   tenant b-tree (the ``+ 0`` in ORDER BY keeps the planner off the HNSW index, whose
   graph returns short or empty results for a small tenant). Only the chunks of tenants
   past ``EXACT_SCAN_MAX_CHUNKS`` are in the HNSW graph (``Chunk.in_hnsw``, the index's
   condition). A mid-size tenant (up to ``MEMORY_EXACT_MAX_CHUNKS``) that is a small share
   of the graph is searched in memory too, if the cache can hold it; any other tenant
   goes through HNSW with ``iterative_scan = relaxed_order`` and a larger ``ef_search``.
   If HNSW still returns fewer rows than asked, the exact scan answers instead,
   so a tenant holding k chunks always gets k hits.

Every candidate of either retriever then gets both scores exactly (BM25 from its
stored terms, cosine from its stored vector) before fusion. Only the k winners'
text, provenance and document title are read, last.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection

from agent_project.lib.embeddings import EmbeddingError, embedder_for_model, get_embedder
from knowledge import analysis, ranking, vector_cache
from knowledge.db import BesideQuery, send_beside, vector_cursor, vectors_comparable

logger = logging.getLogger(__name__)

#: Hits whose fused score is below this are "not relevant" (``ranking.RELEVANCE_THRESHOLD``).
RELEVANCE_THRESHOLD: float = ranking.RELEVANCE_THRESHOLD

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
KEYWORD_CANDIDATE_BUDGET = 300  # at most this many chunks are BM25-scored per query
# A term in more chunks than this never picks candidates: the GIN scan builds the whole
# posting list before LIMIT applies (2 ms at 3k postings, 6-16 ms at 10k-56k in a 100k
# tenant), and the budget's 300 of them would be an arbitrary sample anyway. A query made
# only of such words is ranked over the vector side's candidates (BM25 still scores them).
KEYWORD_SCAN_MAX_POSTINGS = 3_000
COMMON_TERM_SHARE = 0.1  # a term in more than this share of chunks scores but does not pick candidates
TYPO_MIN_LENGTH = 4
TYPO_MIN_SIMILARITY = 0.4
MAX_K = 50


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str  # the document title
    text: str  # the chunk text
    provenance: dict  # page/sheet/row/heading path...
    score: float  # fused score in [0, 1], higher is better
    scores: dict  # per-method scores and ranks: keyword, bm25, vector (cosine), keyword_rank, vector_rank, plan


def _filter_sql(filters: dict | None) -> tuple[str, list]:
    """SQL conditions on chunk ``c`` / document ``d`` for the supported filters."""
    filters = filters or {}
    clauses, params = [], []
    doc_ids = filters.get("document_ids")
    if filters.get("document_id") is not None:
        doc_ids = [filters["document_id"], *(doc_ids or [])]
    if doc_ids:
        clauses.append("c.document_id = ANY(%s)")
        params.append([int(i) for i in doc_ids])
    if filters.get("tags"):
        clauses.append("d.tags && %s::varchar[]")
        params.append([str(t) for t in filters["tags"]])
    for field in ("source_kind", "file_type"):
        if filters.get(field):
            clauses.append(f"d.{field} = %s")
            params.append(str(filters[field]))
    unknown = set(filters) - {"document_ids", "document_id", "tags", "source_kind", "file_type"}
    if unknown:
        raise ValueError(f"unknown search filter(s): {', '.join(sorted(unknown))}")
    return "".join(f" AND {c}" for c in clauses), params


def _from_sql(filter_sql: str) -> str:
    join = " JOIN knowledge_document d ON d.id = c.document_id" if "d." in filter_sql else ""
    return f"knowledge_chunk c{join}"


def _corpus_stats(cur, tenant_id: str, terms: list[str], ef_search: int) -> tuple:
    """N, avgdl, the query terms' document frequencies, the corpus version, whether the
    tenant's chunks are in the HNSW graph, the graph's size as last estimated by
    (auto)vacuum or ANALYZE (for the vector plan) and the tenant's chunks per embedding
    model (``CorpusStats.models``), in one round trip, which also
    sets the session's HNSW scan settings (used only if the tenant is big enough). Set for
    the session, not the transaction: only HNSW scans read them, every search sets them
    first, and a transaction of its own would cost two round trips (BEGIN, COMMIT)."""
    cur.execute(
        "SELECT s.chunk_count, s.token_total, s.version, (SELECT coalesce(json_object_agg(t.term, t.df), '{}') "
        "FROM knowledge_term t WHERE t.tenant_id = s.tenant_id AND t.term = ANY(%s) AND t.df > 0)::text, "
        "s.in_hnsw, (SELECT i.reltuples::bigint FROM pg_class i WHERE i.oid = to_regclass('kb_chunk_embedding_hnsw')), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', false), set_config('hnsw.ef_search', %s, false), "
        "s.models::text FROM knowledge_corpusstats s WHERE s.tenant_id = %s",
        [terms, str(ef_search), tenant_id],
    )
    row = cur.fetchone()
    if not row or not row[0]:
        return 0, 0.0, {}, 0, False, 0, {}
    return (int(row[0]), row[1] / row[0], json.loads(row[3]), int(row[2]), bool(row[4]),
            max(int(row[5] or 0), 0), json.loads(row[8] or "{}"))


def _term_weights(cur, tenant_id: str, terms: list[str], known: dict[str, int],
                  n: int, own_synonyms: tuple[str, ...] = (),
                  query: str = "") -> tuple[dict[str, float], dict[str, int], float]:
    """idf (and df) of each query term the tenant knows; an unknown term is replaced
    by its closest vocabulary terms (pg_trgm), weighted by similarity, or, when it still
    carries affixes the stemmer could not strip (a misspelt "pembyaran"), by the vocabulary
    terms one edit from a guess at its root ("byar" → "bayar"). The third value is the
    query's whole idf mass (unknown terms count as the rarest), what a perfectly matching
    chunk would score: the keyword score's denominator."""
    if not terms:
        return {}, {}, 0.0
    stats = known  # the query terms' and their synonyms' document frequencies
    known = {t: stats[t] for t in terms if t in stats}
    weights = {t: ranking.idf(df, n) for t, df in known.items()}
    # A word the tenant never uses, searched as its synonyms that it does ("ongkos" -> "biaya"):
    # counted in the query's mass as that synonym, so an answer in the tenant's words scores fully.
    synonym_mass = {}
    for t in terms:
        if t not in known:
            for other in analysis.synonyms(t, own_synonyms):
                if other in stats:
                    weights[other] = max(weights.get(other, 0.0), ranking.idf(stats[other], n))
                    known[other] = stats[other]
                    synonym_mass[t] = max(synonym_mass.get(t, 0.0), weights[other])
    unknown = [t for t in terms if t not in known and t not in synonym_mass and not t.isdigit()]
    guesses = {g: t for t in unknown for g in analysis.typo_probes(query, t) if g not in known}
    unknown = [t for t in unknown if len(t) >= TYPO_MIN_LENGTH]
    if unknown or guesses:
        # The trigram index finds the similar terms, the tenant test is a recheck ("|| ''"): with the tenant
        # b-tree, a tenant whose statistics were not yet analysed (just ingested: estimated at one row) had
        # every one of its terms compared, 5 ms a word at 10k terms (/chat "Terima kasih ya kak!" 12.5 ms).
        cur.execute(
            """
            SELECT q.term, t.term, t.df, t.sim FROM unnest(%s::text[]) AS q(term)
            CROSS JOIN LATERAL (
                SELECT term, df, similarity(term, q.term) AS sim FROM knowledge_term
                WHERE (tenant_id || '') = %s AND df > 0 AND term %% q.term
                ORDER BY sim DESC LIMIT 2
            ) t
            """,
            [[*unknown, *guesses], tenant_id],
        )
        for probe, term, df, sim in cur.fetchall():
            if probe in guesses and probe not in unknown:
                if not analysis.one_edit_apart(probe, term):
                    continue
            elif sim < TYPO_MIN_SIMILARITY:
                continue
            weights[term] = max(weights.get(term, 0.0), ranking.idf(df, n) * float(sim))
            known[term] = df
    mass = sum(ranking.idf(known[t], n) if t in known else synonym_mass.get(t) or ranking.idf(0, n) for t in terms)
    return weights, known, mass


def _keyword_candidates(cur, tenant_id, weights, dfs, n, filter_sql, filter_params, qvec=None,
                        terms_of: list[int] | tuple = ()) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """{chunk id: (search_text, token_count, cosine to ``qvec`` or None)} of the keyword
    candidates and, in the same round trip, {chunk id: (search_text, token_count)} of the
    chunks ``terms_of`` names (the in-memory vector search's nearest, for their BM25; a
    chunk deleted since the vectors were loaded is not among them)."""
    terms_sql = ("SELECT c.id, c.search_text, c.token_count, NULL, false FROM knowledge_chunk c "
                 "WHERE (c.tenant_id || '') = %s AND c.id = ANY(%s)")
    terms_params = [tenant_id, list(terms_of)]
    chosen = _candidate_terms(weights, dfs, n)
    if not chosen:
        if not terms_of:
            return {}, {}
        cur.execute(terms_sql, terms_params)
        return {}, {row[0]: row[1:3] for row in cur.fetchall()}
    # The tenant's own lexeme (see Chunk.search_vector) makes the GIN index do the tenant filter.
    tenant_lexeme = "tenant" + hashlib.md5(tenant_id.encode()).hexdigest()
    tsquery = f"'{tenant_lexeme}' & (" + " | ".join("'" + t + "'" for t in chosen) + ")"
    # No ts_rank ordering when even the rarest term exceeds the budget: ranking all its
    # postings cost up to 90 ms p95 on a 100k-chunk tenant. Such a query has no
    # distinctive word; the vector side carries it.
    # The tenant_id test is a recheck only ("|| ''" keeps it off the b-tree): ANDing the
    # GIN bitmap with the tenant's b-tree bitmap read all of a 100k-chunk tenant's
    # entries (5.5 ms) to filter what the tenant lexeme had already filtered.
    cosine_sql, cosine_params = (", 1 - (c.embedding <=> %b)", [qvec]) if qvec is not None else (", NULL::float8", [])
    sql = (f"SELECT c.id, c.search_text, c.token_count{cosine_sql}, true FROM {_from_sql(filter_sql)}, "
           f"to_tsquery('simple', %s) q WHERE (c.tenant_id || '') = %s AND c.search_vector @@ q{filter_sql} LIMIT %s")
    params = [*cosine_params, tsquery, tenant_id, *filter_params, KEYWORD_CANDIDATE_BUDGET]
    if terms_of:
        sql, params = f"({sql}) UNION ALL ({terms_sql})", [*params, *terms_params]
    cur.execute(sql, params)
    keyword, terms = {}, {}
    for cid, search_text, length, cosine, matched in cur.fetchall():
        if matched:
            keyword[cid] = (search_text, length, cosine)
        else:
            terms[cid] = (search_text, length)
    return keyword, terms


def _candidate_terms(weights: dict[str, float], dfs: dict[str, int], n: int) -> list[str]:
    """The query terms whose postings pick the keyword candidates."""
    if not weights:
        return []
    # Rarest terms first (highest idf); stop adding terms once their postings exceed
    # the budget. Common words still count in BM25 below, they just don't pick candidates.
    by_rarity = sorted(weights, key=lambda t: -weights[t])
    chosen, postings = [], 0
    for term in by_rarity:
        df = dfs[term]
        if df > KEYWORD_SCAN_MAX_POSTINGS or (
                chosen and (postings + df > KEYWORD_CANDIDATE_BUDGET or df > COMMON_TERM_SHARE * n)):
            continue
        chosen.append(term)
        postings += df
    return chosen


def _nearest(cur, sql: str, params: list, tenant_id, qvec, also: list[int],
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


def _exact_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model=None) -> tuple[list, dict]:
    # The distance once per row (OFFSET 0 keeps the subquery from being flattened into
    # two evaluations); "+ 0" keeps the planner off the HNSW index; equal distances go
    # to the lower id, as in memory.
    own_sql, own_params = _with_model(filter_sql, filter_params, model)
    sql = (f"SELECT id, 1 - distance, search_text, token_count FROM ("
           f"SELECT c.id, c.embedding <=> %b AS distance, c.search_text, c.token_count "
           f"FROM {_from_sql(filter_sql)} WHERE c.tenant_id = %s{own_sql} OFFSET 0) s "
           f"ORDER BY distance + 0, id LIMIT %s")
    return _nearest(cur, sql, [qvec, tenant_id, *own_params, limit], tenant_id, qvec, also, model)


def _hnsw_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model=None) -> tuple[list, dict]:
    # iterative_scan and ef_search were set by _corpus_stats, for this session
    own_sql, own_params = _with_model(filter_sql, filter_params, model)
    sql = (f"SELECT c.id, 1 - (c.embedding <=> %b), c.search_text, c.token_count "
           f"FROM {_from_sql(filter_sql)} WHERE c.tenant_id = %s AND c.in_hnsw{own_sql} "
           f"ORDER BY c.embedding <=> %b LIMIT %s")
    return _nearest(cur, sql, [qvec, tenant_id, *own_params, qvec, limit], tenant_id, qvec, also, model)


def _with_model(filter_sql: str, filter_params: list, model: str | None) -> tuple[str, list]:
    """The filters plus "vectors of this model only" (a tenant whose chunks two models embedded)."""
    return (filter_sql + " AND c.embedding_model = %s", [*filter_params, model]) if model else (filter_sql, filter_params)


def _in_memory(cur, tenant_id: str, version: int, n: int, dims: int) -> vector_cache.TenantVectors | None:
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


def _uses_hnsw(n: int, in_graph: bool, graph: int, dims: int, filtered: bool, tenant_id: str = "") -> bool:
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


def _vector_candidates(cur, tenant_id, qvec, limit, hnsw: bool, filter_sql, filter_params,
                       also: list[int], model: str | None = None) -> tuple[list, dict[int, float], str]:
    """The tenant's ``limit`` nearest chunks (of ``model`` only, when given), the cosines of
    ``also`` and the plan used, in the database: an exact scan for a small tenant, HNSW for a
    big one."""
    if not hnsw:
        return *_exact_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model), "exact"
    rows, extra = _hnsw_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model)
    if len(rows) < limit:
        # The index ran out (a very selective filter): the exact scan knows the truth.
        return *_exact_vector(cur, tenant_id, qvec, limit, filter_sql, filter_params, also, model), "exact-fallback"
    return rows, extra, "hnsw"


#: Whether this process's last search of each tenant went through HNSW: a big tenant's HNSW
#: search starts before its statistics are read (the plan is checked when they arrive).
_tenant_plans: dict[str, bool] = {}


def _details(cur, tenant_id: str, ids: list[int]) -> dict[int, tuple]:
    """{chunk id: (document id, document title, text, provenance)}, chunks by primary key
    ("|| ''": a plan through the tenant b-tree read all of a tenant's chunks), titles by
    the documents' primary key once per document. (A title subquery per chunk row ran a
    sequential scan of a small documents table for each: 14 µs a row.)"""
    if not ids:
        return {}
    cur.execute(
        "WITH c AS MATERIALIZED (SELECT c.id, c.document_id, c.text, c.provenance FROM knowledge_chunk c "
        "WHERE (c.tenant_id || '') = %s AND c.id = ANY(%s)), "
        "d AS (SELECT d.id, d.title FROM knowledge_document d WHERE d.tenant_id = %s "
        "AND d.id = ANY(ARRAY(SELECT DISTINCT document_id FROM c))) "
        "SELECT c.id, c.document_id, d.title, c.text, c.provenance FROM c LEFT JOIN d ON d.id = c.document_id",
        [tenant_id, ids, tenant_id],
    )
    return {cid: (document_id, title or "", text, provenance) for cid, document_id, title, text, provenance
            in cur.fetchall()}


def _parallel(hnsw: bool, use_keyword: bool, use_vector: bool, filter_sql: str) -> bool:
    """Run a big tenant's HNSW search on a second connection while the keyword side runs
    on this one (``KB_PARALLEL_VECTOR_SEARCH``). Not inside a transaction: the second
    connection would not see its writes."""
    return (use_keyword and use_vector and hnsw and not filter_sql
            and getattr(settings, "KB_PARALLEL_VECTOR_SEARCH", True) and not connection.in_atomic_block)


def _hnsw_beside(sent: contextlib.ExitStack, tenant_id, qvec, limit, ef_search, filter_sql,
                 filter_params) -> BesideQuery | None:
    """The HNSW search sent on another connection (closed with ``sent``): ids, cosines and
    search terms only (the text of the winners comes from this connection: the detail
    columns and the documents join cost the side query ~1 ms)."""
    query = send_beside(
        f"SELECT c.id, 1 - (c.embedding <=> %b), c.search_text, c.token_count FROM {_from_sql(filter_sql)} "
        f"WHERE c.tenant_id = %s AND c.in_hnsw{filter_sql} ORDER BY c.embedding <=> %b LIMIT %s",
        [qvec, tenant_id, *filter_params, qvec, limit],
        # set once per connection (ef_search is the same for every k up to MAX_K)
        session={"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": str(ef_search)},
    )
    return None if query is None else sent.enter_context(query)


_sizes_warned_at = [float("-inf")]


def _warn_sizes_differ(embedder) -> None:
    """Once a minute per process, not on every search of the window."""
    now = time.monotonic()
    if now - _sizes_warned_at[0] >= 60:
        _sizes_warned_at[0] = now
        logger.warning("%s makes %d-dim vectors but the knowledge base stores another size: searching by keyword "
                       "only until `manage.py kb_reembed --all-tenants --resize` has run", embedder.name,
                       embedder.dimensions)


def _query_vector(query: str, embedder=None):
    """The query's vector: chat spellings written out first ("brp ongkir" is embedded as
    "berapa ongkos kirim": the models learnt the written-out words)."""
    return (embedder or get_embedder()).embed_query(analysis.embedding_query(query))


@dataclass(frozen=True)
class VectorSide:
    """Whose vectors a tenant's search compares: ``embedder`` makes query vectors of the model
    the tenant's chunks have (None: by keyword only); ``model``: only chunks of that model are
    compared (the tenant's chunks were embedded by several); ``note``: said in the plan."""
    embedder: object | None
    model: str | None = None
    note: str = ""


def _vector_side(models: dict[str, int], n: int, embedder) -> VectorSide:
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


def _observed(search):
    """Retrieval latency into the metrics (``layan_retrieval_duration_seconds``)."""

    @functools.wraps(search)
    def timed(**kwargs):
        from agent_project import metrics

        started = time.perf_counter()
        hits = search(**kwargs)
        methods = kwargs.get("methods") or ("keyword", "vector")
        metrics.retrieval_observe(seconds=time.perf_counter() - started,
                                  method="hybrid" if len(methods) > 1 else methods[0])
        return hits

    return timed


@_observed
def chunk_search(*, tenant, query: str, k: int = 5, filters: dict | None = None,
                 methods: tuple[str, ...] = ("keyword", "vector"), query_vector=None,
                 timings: dict | None = None) -> list[SearchHit]:
    """The tenant's ``k`` best chunks for ``query``, best first.

    ``filters``: ``document_id``/``document_ids``, ``tags`` (any of), ``source_kind``,
    ``file_type``. ``methods`` restricts retrieval to one method (for benchmarks and
    debugging). ``query_vector``: the query's embedding when the caller already has
    it (it must come from the current embedder). ``timings``: a dict to receive ``embedding_ms`` (the query's
    embedding, 0 when cached or not needed). Returns ``min(k, matching chunks)`` hits; compare ``score`` with
    ``RELEVANCE_THRESHOLD`` to decide whether they answer the question at all.
    """
    query = (query or "").strip()
    k = max(1, min(int(k), MAX_K))
    if not query:
        return []
    tenant_id = tenant.pk if hasattr(tenant, "pk") else str(tenant)
    filter_sql, filter_params = _filter_sql(filters)
    embedder = get_embedder()
    profile = ranking.fusion_profile(embedder.name)
    use_keyword, use_vector = "keyword" in methods, "vector" in methods
    qvec = None
    embedding_ms = 0.0
    if timings is not None:
        timings["embedding_ms"] = 0.0
    if use_vector and not vectors_comparable(embedder.dimensions if query_vector is None else len(query_vector)):
        if not use_keyword:
            raise EmbeddingError(f"{embedder.name} makes {embedder.dimensions}-dim vectors but the knowledge base "
                                 "stores vectors of another size: run `manage.py kb_reembed --all-tenants --resize`")
        _warn_sizes_differ(embedder)
        use_vector = False
    if use_vector and query_vector is not None:
        qvec = np.asarray(query_vector, dtype=np.float32)
    elif use_vector:
        try:
            started = time.perf_counter()
            qvec = _query_vector(query)
            embedding_ms += (time.perf_counter() - started) * 1000
        except EmbeddingError as exc:
            if not use_keyword:
                raise
            # The provider is down (Gemini, after its retries): keyword search still answers,
            # and the failure is counted in layan_embedding_calls{outcome="error"}.
            logger.warning("query embedding failed, searching by keyword only: %s", exc)
            use_vector = False
    pool = max(30, 4 * k)

    ef_search = max(HNSW_EF_SEARCH, pool)
    terms = analysis.query_terms(query) if use_keyword else []
    own_synonyms = tuple(getattr(tenant, "synonyms", None) or ())  # the tenant's own groups, when given the Tenant
    sent = contextlib.ExitStack()  # the queries sent beside, closed however this search ends
    beside = None
    if _parallel(_tenant_plans.get(tenant_id, False), use_keyword, use_vector, filter_sql):
        beside = _hnsw_beside(sent, tenant_id, qvec, pool, ef_search, filter_sql, filter_params)
    with sent, vector_cursor() as cur:
        looked_up = list(dict.fromkeys([*terms, *(o for t in terms for o in analysis.synonyms(t, own_synonyms))]))
        n, avgdl, known, version, in_graph, graph, models = _corpus_stats(cur, tenant_id, looked_up, ef_search)
        if n == 0:
            return []
        side = _vector_side(models, n, embedder) if use_vector and query_vector is None else VectorSide(embedder)
        model = side.model  # compare only this model's chunks (None: all of the tenant's are of one model)
        if use_vector and side.embedder is not embedder:
            beside = None  # started with the configured model's query vector: not this tenant's
            try:
                started = time.perf_counter()
                qvec = _query_vector(query, side.embedder) if side.embedder is not None else None
                embedding_ms += (time.perf_counter() - started) * 1000
            except EmbeddingError as exc:
                logger.warning("query embedding with %s failed, searching by keyword only: %s", model, exc)
                qvec = None
            if qvec is None:
                use_vector = False
            else:
                profile = ranking.fusion_profile(side.embedder.name)
        if not use_vector:
            beside = None
        dims = len(qvec) if qvec is not None else embedder.dimensions
        hnsw = _uses_hnsw(n, in_graph, graph, dims, bool(filter_sql or model), tenant_id)
        if len(_tenant_plans) > 100_000:
            _tenant_plans.clear()
        if not filter_sql and not model:  # only an unfiltered search runs beside
            _tenant_plans[tenant_id] = hnsw
        if beside is None and not model and _parallel(hnsw, use_keyword, use_vector, filter_sql):
            beside = _hnsw_beside(sent, tenant_id, qvec, pool, ef_search, filter_sql, filter_params)
        elif beside is not None and not hnsw:
            beside = None  # the tenant has shrunk (or the table grown): the exact plan below, not the HNSW result
        weights, dfs, mass = _term_weights(cur, tenant_id, terms, known, n, own_synonyms, query)
        # An exact vector search runs here, over the tenant's vectors in memory, before the
        # keyword query, which then also brings the nearest chunks' stored terms.
        memory = None
        if use_vector and beside is None and not hnsw and not filter_sql and not model:
            memory = _in_memory(cur, tenant_id, version, n, dims)
        nearest, cosines_of = memory.search(qvec, pool) if memory is not None else ([], None)
        keyword_rows, nearest_terms = _keyword_candidates(
            cur, tenant_id, weights, dfs, n, filter_sql, filter_params,
            qvec=qvec if beside is not None else None, terms_of=[cid for cid, _ in nearest])
        # Both scores for every candidate of either retriever: BM25 from the stored terms,
        # cosine from the vectors in memory, or from the vector query, which also returns
        # those of the keyword candidates (or, when it runs beside, from the keyword query itself).
        score_bm25 = ranking.Bm25Scorer(weights, avgdl)
        bm25 = {cid: score_bm25(text, length) for cid, (text, length, _) in keyword_rows.items()}
        keyword_top = sorted(bm25, key=lambda cid: -bm25[cid])[:pool]
        cosine: dict[int, float | None] = {cid: keyword_rows[cid][2] for cid in keyword_top}
        vector_rows, prefetched, plan = [], {}, "none"
        if memory is not None:
            # A chunk deleted since the vectors were loaded has no terms: it is left out.
            vector_rows = [(cid, cos, *nearest_terms[cid]) for cid, cos in nearest if cid in nearest_terms]
            cosine.update(cosines_of(keyword_top))
            plan = "memory"
        elif beside is not None:
            # While the other connection searches, this one fetches what the keyword side's
            # best k would show (most hits of a lexical query are among them).
            prefetched = _details(cur, tenant_id, keyword_top[:k])
            try:
                vector_rows = sorted(beside.result(), key=lambda r: (-r[1], r[0]))  # relaxed_order: re-sort
                plan = "hnsw"
            except psycopg.Error as exc:  # the second connection failed: do it here
                logger.warning("vector search beside failed (%s); searching serially", exc)
                beside = None
            if beside is not None and len(vector_rows) < pool:
                vector_rows, _ = _exact_vector(cur, tenant_id, qvec, pool, filter_sql, filter_params, [])
                plan = "exact-fallback"
        if use_vector and beside is None and memory is None:
            vector_rows, extra, plan = _vector_candidates(cur, tenant_id, qvec, pool, hnsw, filter_sql,
                                                          filter_params, also=keyword_top, model=model)
            cosine.update(extra)
        if side.note:
            plan = side.note if not use_vector else f"{plan}; {side.note}"
        for cid, sim, text, length in vector_rows:
            cosine[cid] = float(sim)
            if cid not in bm25:
                bm25[cid] = score_bm25(text, length)
        keyword_rank = {cid: i + 1 for i, cid in enumerate(keyword_top)}
        vector_rank = {row[0]: i + 1 for i, row in enumerate(vector_rows)}
        candidates = sorted(set(keyword_top) | set(vector_rank))  # sorted: deterministic ties
        if not candidates:
            return []
        keyword = {cid: ranking.keyword_score(bm25[cid], mass) for cid in candidates}
        vector_profile = profile
        if use_vector and not any(keyword.values()):
            # The vector score stands alone: mapped for the query's language (ranking.alone_profile).
            vector_profile = ranking.alone_profile(profile, analysis.looks_indonesian(query))
        scored = []
        for cid in candidates:
            cos = cosine.get(cid)
            vec = ranking.vector_score(cos, vector_profile) if cos is not None else 0.0
            scored.append((cid, bm25[cid], keyword[cid], cos, vec))
        if use_keyword and use_vector:
            ranked = ranking.rank_fused([(e[2], e[4], e[1], e[3]) for e in scored], profile)
        else:
            # One method (benchmarks, debugging): its own score, ordered by its raw value.
            order = sorted(range(len(scored)), key=lambda i: -(scored[i][1] if use_keyword else (scored[i][3] or -1)))
            ranked = [(i, scored[i][2] if use_keyword else scored[i][4]) for i in order]
        ranked = ranked[:k]
        if timings is not None:
            timings["embedding_ms"] = round(embedding_ms, 3)
        vector_model = (side.embedder.name if side.embedder is not None else None) if use_vector else None

        # What the winners show (text, provenance, document title), for them only.
        details = prefetched
        missing = [scored[i][0] for i, _ in ranked if scored[i][0] not in details]
        if missing:
            details.update(_details(cur, tenant_id, missing))

    hits = []
    for index, fused in ranked:
        cid, raw, kw, cos, _ = scored[index]
        if cid not in details:
            continue  # deleted since its candidate row was read
        document_id, title, text, provenance = details[cid]
        if isinstance(provenance, str):  # Django's connection loads jsonb as text for JSONField
            provenance = json.loads(provenance)
        hits.append(SearchHit(
            chunk_id=cid, document_id=document_id, title=title, text=text, provenance=provenance or {},
            score=round(ranking.calibrated(fused, profile), 6),
            scores={"keyword": round(kw, 6), "bm25": round(raw, 6), "vector": None if cos is None else round(cos, 6),
                    "keyword_rank": keyword_rank.get(cid), "vector_rank": vector_rank.get(cid), "plan": plan,
                    "model": vector_model},
        ))
    return hits
