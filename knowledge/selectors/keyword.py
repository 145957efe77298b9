"""The keyword side of a search: the tenant's corpus statistics, the query terms' BM25
weights (synonyms, typos corrected against the tenant's vocabulary with ``pg_trgm``) and the
candidates the GIN index finds for them, rarest terms first."""

from __future__ import annotations

import hashlib
import json

from knowledge import analysis, ranking
from knowledge.selectors import filtering

KEYWORD_CANDIDATE_BUDGET = 300  # at most this many chunks are BM25-scored per query


# A term in more chunks than this never picks candidates: the GIN scan builds the whole
# posting list before LIMIT applies (2 ms at 3k postings, 6-16 ms at 10k-56k in a 100k
# tenant), and the budget's 300 of them would be an arbitrary sample anyway. A query made
# only of such words is ranked over the vector side's candidates (BM25 still scores them).
KEYWORD_SCAN_MAX_POSTINGS = 3_000


COMMON_TERM_SHARE = 0.1  # a term in more than this share of chunks scores but does not pick candidates


TYPO_MIN_LENGTH = 4


TYPO_MIN_SIMILARITY = 0.4


def corpus_stats(cur, tenant_id: str, terms: list[str], ef_search: int) -> tuple:
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


def term_weights(cur, tenant_id: str, terms: list[str], known: dict[str, int],
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


def keyword_candidates(cur, tenant_id, weights, dfs, n, filter_sql, filter_params, qvec=None,
                        terms_of: list[int] | tuple = ()) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """{chunk id: (search_text, token_count, cosine to ``qvec`` or None)} of the keyword
    candidates and, in the same round trip, {chunk id: (search_text, token_count)} of the
    chunks ``terms_of`` names (the in-memory vector search's nearest, for their BM25; a
    chunk deleted since the vectors were loaded is not among them)."""
    terms_sql = ("SELECT c.id, c.search_text, c.token_count, NULL, false FROM knowledge_chunk c "
                 "WHERE (c.tenant_id || '') = %s AND c.id = ANY(%s)")
    terms_params = [tenant_id, list(terms_of)]
    chosen = candidate_terms(weights, dfs, n)
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
    sql = (f"SELECT c.id, c.search_text, c.token_count{cosine_sql}, true FROM {filtering.from_sql(filter_sql)}, "
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


def candidate_terms(weights: dict[str, float], dfs: dict[str, int], n: int) -> list[str]:
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
