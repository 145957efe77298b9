"""The tenant's corpus statistics for BM25 (term document frequencies, chunk count, total
length): checked against its chunks, rebuilt from them, and the chunks' search terms
re-derived after the analyser changed (``manage.py kb_reindex``). The write path keeps them in
step as it goes (``chunks._apply_stats``); these are the repairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection, transaction

from knowledge import analysis, selectors
from knowledge.services.chunks import _join_graph


@dataclass(frozen=True)
class StatsCheck:
    chunk_count: tuple[int, int]  # (stored, from the chunks)
    token_total: tuple[int, int]
    terms_wrong: int  # terms whose stored df differs from the chunks' (missing or extra included)
    terms_total: int  # distinct terms in the chunks
    outside_graph: int = 0  # chunks of a tenant in the HNSW graph (CorpusStats.in_hnsw) that are not in it
    models: tuple[dict, dict] = ({}, {})  # chunks per embedding model (stored, from the chunks)

    @property
    def ok(self) -> bool:
        return self.chunk_count[0] == self.chunk_count[1] and self.token_total[0] == self.token_total[1] \
            and not self.terms_wrong and not self.outside_graph and self.models[0] == self.models[1]


# The tenant's term document frequencies as its chunks have them (one row per distinct term of a chunk).
_TRUE_MODELS_SQL = ("SELECT coalesce(jsonb_object_agg(embedding_model, n), '{}'::jsonb) FROM (SELECT embedding_model, "
                    "count(*) AS n FROM knowledge_chunk WHERE tenant_id = %s GROUP BY 1) m")
_TRUE_DF_SQL = ("SELECT t.term, count(*)::int AS df FROM knowledge_chunk c "
                "CROSS JOIN LATERAL (SELECT DISTINCT term FROM unnest(string_to_array(c.search_text, ' ')) AS term "
                "WHERE term <> '') t WHERE c.tenant_id = %s GROUP BY t.term")


def stats_check(*, tenant) -> StatsCheck:
    """Compare the tenant's stored BM25 statistics with what its chunks say (changes nothing)."""
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(token_count), 0) FROM knowledge_chunk WHERE tenant_id = %s",
                    [tenant.pk])
        true_count, true_tokens = cur.fetchone()
        cur.execute("SELECT chunk_count, token_total, in_hnsw, models::text FROM knowledge_corpusstats "
                    "WHERE tenant_id = %s", [tenant.pk])
        stored = cur.fetchone() or (0, 0, False, "{}")
        cur.execute(f"SELECT ({_TRUE_MODELS_SQL})::text", [tenant.pk])
        true_models = json.loads(cur.fetchone()[0])
        outside = 0
        if stored[2]:
            cur.execute("SELECT count(*) FROM knowledge_chunk WHERE tenant_id = %s AND NOT in_hnsw", [tenant.pk])
            outside = cur.fetchone()[0]
        cur.execute(
            f"WITH truth AS ({_TRUE_DF_SQL}), stored AS (SELECT term, df FROM knowledge_term WHERE tenant_id = %s "
            "AND df > 0) SELECT count(*) FILTER (WHERE truth.df IS DISTINCT FROM stored.df), count(truth.term) "
            "FROM truth FULL JOIN stored ON stored.term = truth.term",
            [tenant.pk, tenant.pk],
        )
        wrong, total = cur.fetchone()
    return StatsCheck((int(stored[0]), int(true_count)), (int(stored[1]), int(true_tokens)), int(wrong), int(total),
                      int(outside), (json.loads(stored[3]), true_models))


def stats_rebuild(*, tenant) -> StatsCheck:
    """Recompute the tenant's BM25 statistics (term df, chunk count, total length) from its
    chunks, in one transaction that first locks the statistics row, so an ingestion of the
    same tenant waits instead of interleaving. Returns the check from before the rebuild."""
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO knowledge_corpusstats (tenant_id, chunk_count, token_total) VALUES (%s, 0, 0) "
                "ON CONFLICT (tenant_id) DO NOTHING", [tenant.pk])
            cur.execute("SELECT 1 FROM knowledge_corpusstats WHERE tenant_id = %s FOR UPDATE", [tenant.pk])
            before = stats_check(tenant=tenant)
            cur.execute("DELETE FROM knowledge_term WHERE tenant_id = %s", [tenant.pk])
            cur.execute(f"INSERT INTO knowledge_term (tenant_id, term, df) SELECT %s, term, df FROM ({_TRUE_DF_SQL}) x",
                        [tenant.pk, tenant.pk])
            cur.execute(
                "UPDATE knowledge_corpusstats s SET chunk_count = c.n, token_total = c.tokens, "
                f"models = ({_TRUE_MODELS_SQL}), version = nextval('knowledge_corpus_version_seq') "
                "FROM (SELECT count(*) AS n, coalesce(sum(token_count), 0) AS tokens FROM knowledge_chunk "
                "WHERE tenant_id = %s) c WHERE s.tenant_id = %s RETURNING s.chunk_count, s.in_hnsw",
                [tenant.pk, tenant.pk, tenant.pk],
            )
            count, in_hnsw = cur.fetchone()
            if in_hnsw or count > selectors.vector.EXACT_SCAN_MAX_CHUNKS:
                _join_graph(cur, tenant.pk)  # any chunk that missed the flag (it costs one scan of the tenant's)
    return before


def chunks_reanalyse(*, tenant, batch_size: int = 1000, progress=None) -> int:
    """Re-derive every chunk's stored search terms from its text with the current analyser
    (after a change to ``knowledge.analysis``: stemmer, tokens), then rebuild the tenant's
    statistics. Batches commit one by one; returns how many chunks changed."""
    changed = 0
    last_id = 0
    while True:
        with connection.cursor() as cur:
            cur.execute("SELECT id, text, search_text FROM knowledge_chunk WHERE tenant_id = %s AND id > %s "
                        "ORDER BY id LIMIT %s", [tenant.pk, last_id, batch_size])
            rows = cur.fetchall()
        if not rows:
            break
        updates = []
        for chunk_id, text, stored in rows:
            search_text, token_count = analysis.search_text(text)
            if search_text != stored:
                updates.append((chunk_id, search_text, token_count))
        if updates:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(
                    "UPDATE knowledge_chunk c SET search_text = u.search_text, token_count = u.token_count "
                    "FROM unnest(%s::bigint[], %s::text[], %s::int[]) AS u(id, search_text, token_count) "
                    "WHERE c.id = u.id AND c.tenant_id = %s",
                    [[u[0] for u in updates], [u[1] for u in updates], [u[2] for u in updates], tenant.pk],
                )
        changed += len(updates)
        last_id = rows[-1][0]
        if progress:
            progress(len(rows))
    stats_rebuild(tenant=tenant)
    return changed
