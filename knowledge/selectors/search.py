"""``chunk_search``: the tenant's best chunks for a query. It runs the keyword side
(``keyword``) and the vector side (``vector``) inside the tenant, gives every candidate of either
both scores exactly (BM25 from its stored terms, cosine from its stored vector), fuses them
(``knowledge.ranking``) and reads the k winners' text, provenance and document title last.
Imports no app but ``knowledge``'s own modules.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import psycopg

from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge import analysis, ranking
from knowledge.db import vector_cursor, vectors_comparable
from knowledge.selectors import filtering, keyword, vector

logger = logging.getLogger(__name__)

#: Hits whose fused score is below this are "not relevant" (``ranking.RELEVANCE_THRESHOLD``).
RELEVANCE_THRESHOLD: float = ranking.RELEVANCE_THRESHOLD


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


def hit_details(cur, tenant_id: str, ids: list[int]) -> dict[int, tuple]:
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


_sizes_warned_at = [float("-inf")]


def _warn_sizes_differ(embedder) -> None:
    """Once a minute per process, not on every search of the window."""
    now = time.monotonic()
    if now - _sizes_warned_at[0] >= 60:
        _sizes_warned_at[0] = now
        logger.warning("%s makes %d-dim vectors but the knowledge base stores another size: searching by keyword "
                       "only until `manage.py kb_reembed --all-tenants --resize` has run", embedder.name,
                       embedder.dimensions)


def query_embedding(query: str, embedder=None):
    """The query's vector: chat spellings written out first ("brp ongkir" is embedded as
    "berapa ongkos kirim": the models learnt the written-out words)."""
    return (embedder or get_embedder()).embed_query(analysis.embedding_query(query))


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
    filter_sql, filter_params = filtering.filter_sql_of(filters)
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
            qvec = query_embedding(query)
            embedding_ms += (time.perf_counter() - started) * 1000
        except EmbeddingError as exc:
            if not use_keyword:
                raise
            # The provider is down (Gemini, after its retries): keyword search still answers,
            # and the failure is counted in layan_embedding_calls{outcome="error"}.
            logger.warning("query embedding failed, searching by keyword only: %s", exc)
            use_vector = False
    pool = max(30, 4 * k)

    ef_search = max(vector.HNSW_EF_SEARCH, pool)
    terms = analysis.query_terms(query, context=analysis.name_terms(getattr(tenant, "name", ""))) if use_keyword else []
    own_synonyms = tuple(getattr(tenant, "synonyms", None) or ())  # the tenant's own groups, when given the Tenant
    sent = contextlib.ExitStack()  # the queries sent beside, closed however this search ends
    beside = None
    if vector.parallel(vector.tenant_plans.get(tenant_id, False), use_keyword, use_vector, filter_sql):
        beside = vector.hnsw_beside(sent, tenant_id, qvec, pool, ef_search, filter_sql, filter_params)
    with sent, vector_cursor() as cur:
        looked_up = list(dict.fromkeys([*terms, *(o for t in terms for o in analysis.synonyms(t, own_synonyms))]))
        n, avgdl, known, version, in_graph, graph, models = keyword.corpus_stats(cur, tenant_id, looked_up, ef_search)
        if n == 0:
            return []
        side = vector.vector_side(models, n, embedder) if use_vector and query_vector is None else vector.VectorSide(embedder)
        model = side.model  # compare only this model's chunks (None: all of the tenant's are of one model)
        if use_vector and side.embedder is not embedder:
            beside = None  # started with the configured model's query vector: not this tenant's
            try:
                started = time.perf_counter()
                qvec = query_embedding(query, side.embedder) if side.embedder is not None else None
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
        hnsw = vector.uses_hnsw(n, in_graph, graph, dims, bool(filter_sql or model), tenant_id)
        if len(vector.tenant_plans) > 100_000:
            vector.tenant_plans.clear()
        if not filter_sql and not model:  # only an unfiltered search runs beside
            vector.tenant_plans[tenant_id] = hnsw
        if beside is None and not model and vector.parallel(hnsw, use_keyword, use_vector, filter_sql):
            beside = vector.hnsw_beside(sent, tenant_id, qvec, pool, ef_search, filter_sql, filter_params)
        elif beside is not None and not hnsw:
            beside = None  # the tenant has shrunk (or the table grown): the exact plan below, not the HNSW result
        weights, dfs, mass = keyword.term_weights(cur, tenant_id, terms, known, n, own_synonyms, query)
        # An exact vector search runs here, over the tenant's vectors in memory, before the
        # keyword query, which then also brings the nearest chunks' stored terms.
        memory = None
        if use_vector and beside is None and not hnsw and not filter_sql and not model:
            memory = vector.in_memory(cur, tenant_id, version, n, dims)
        nearest, cosines_of = memory.search(qvec, pool) if memory is not None else ([], None)
        keyword_rows, nearest_terms = keyword.keyword_candidates(
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
            prefetched = hit_details(cur, tenant_id, keyword_top[:k])
            try:
                vector_rows = sorted(beside.result(), key=lambda r: (-r[1], r[0]))  # relaxed_order: re-sort
                plan = "hnsw"
            except psycopg.Error as exc:  # the second connection failed: do it here
                logger.warning("vector search beside failed (%s); searching serially", exc)
                beside = None
            if beside is not None and len(vector_rows) < pool:
                vector_rows, _ = vector.exact_vector(cur, tenant_id, qvec, pool, filter_sql, filter_params, [])
                plan = "exact-fallback"
        if use_vector and beside is None and memory is None:
            vector_rows, extra, plan = vector.vector_candidates(cur, tenant_id, qvec, pool, hnsw, filter_sql,
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
        keyword_score = {cid: ranking.keyword_score(bm25[cid], mass) for cid in candidates}
        vector_profile = profile
        if use_vector and not any(keyword_score.values()):
            # The vector score stands alone: mapped for the query's language (ranking.alone_profile).
            vector_profile = ranking.alone_profile(profile, analysis.looks_indonesian(query))
        scored = []
        for cid in candidates:
            cos = cosine.get(cid)
            vec = ranking.vector_score(cos, vector_profile) if cos is not None else 0.0
            scored.append((cid, bm25[cid], keyword_score[cid], cos, vec))
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
            details.update(hit_details(cur, tenant_id, missing))

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
