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

Modules: ``search`` (``chunk_search``: the two sides, fusion, the hits), ``keyword`` (BM25),
``vector`` (the vector plans and which model's vectors are compared) and ``filtering`` (search
filters as SQL). Other apps import what is here: ``chunk_search``, ``SearchHit``,
``RELEVANCE_THRESHOLD`` and ``MAX_K``.
"""

from knowledge.selectors.search import MAX_K, RELEVANCE_THRESHOLD, SearchHit, chunk_search

__all__ = ["MAX_K", "RELEVANCE_THRESHOLD", "SearchHit", "chunk_search"]
