"""The writing core every flow shares: sections to chunk drafts, drafts to embedded and
analysed chunks, and one transaction's swap of a document's chunks with the tenant's term
statistics kept in step.

The lock order every writer follows: key locks (``_lock_keys``), document rows, the tenant's
statistics row (``_lock_stats``), term rows. Embedding, the slow part, happens before the
transaction opens, so a failure leaves everything stored unchanged and no lock is held while
the model runs. Imports nothing of the other flows (they import this).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg.types.json import Jsonb

from agent_project.errors import ApiError
from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge import analysis, selectors
from knowledge.db import copy_chunks, stored_dimensions
from knowledge.ingestion.chunking import ChunkDraft, chunk_sections
from knowledge.ingestion.common import Section
from knowledge.ingestion.markdown import split_markdown
from knowledge.models import Document

logger = logging.getLogger(__name__)

EMBED_BATCH = 64


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def checksum_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lock_keys(tenant_id: str, keys: Iterable[str]) -> None:
    """Serialise the writers of the same content (``checksum:…``) or the same
    ``external_id`` (``external:…``) of one tenant until the transaction ends: the
    duplicate check and the write then see each other: four concurrent uploads of one file
    store it once (they stored four documents), concurrent upserts of a new external_id
    create it once (the others answered 500 on the unique constraint). Transaction-scoped advisory locks,
    taken in sorted order (no deadlock between multi-entry upserts); a hash collision only
    makes two unrelated writers wait for each other."""
    keys = sorted({f"kb:{tenant_id}:{key}" for key in keys})
    if keys:
        with connection.cursor() as cur:
            cur.execute("SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                        "FROM (SELECT k FROM unnest(%s::text[]) AS k ORDER BY k) AS ordered", [keys])


@dataclass
class PreparedChunks:
    drafts: list[ChunkDraft]
    vectors: np.ndarray
    analysed: list[tuple[str, int]]  # (search_text, token_count)
    embedding_model: str


def chunk_drafts(sections: list[Section]) -> list[ChunkDraft]:
    return chunk_sections(sections, target_words=_setting("KB_CHUNK_WORDS", 180),
                          overlap_words=_setting("KB_CHUNK_OVERLAP_WORDS", 30))


def prepare_chunks(drafts: list[ChunkDraft], analyse: bool = True) -> PreparedChunks:
    """Embed (in batches) and analyse the drafts. No database access, except the
    first time a process checks the vector column's size (``_check_dimensions``).
    Without ``analyse`` the caller runs ``analyse_chunks`` later (the pipelined
    import analyses on the thread that writes, beside the next file's embedding)."""
    embedder = get_embedder()
    texts = [d.text for d in drafts]
    if texts:
        _check_dimensions(embedder)

    def embed_all() -> np.ndarray:
        parts = [embedder.embed_documents(texts[i:i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
        return np.vstack(parts) if parts else np.zeros((0, embedder.dimensions), dtype=np.float32)

    if not (analyse and len(texts) > EMBED_BATCH and embedder.overlaps_writes):
        prepared = PreparedChunks(drafts=drafts, vectors=embed_all(), analysed=[], embedding_model=embedder.name)
        return analyse_chunks(prepared) if analyse else prepared
    # Stemming is pure Python, and between its batches this model leaves CPU idle
    # (``overlaps_writes``): the chunks are analysed here while a worker thread embeds them.
    # Measured on FacQA as one 272-chunk file (onnx): 3.3% over the bare encode serially,
    # 0.8% overlapped; a single batch (a 16-chunk file) gained nothing, so it stays serial.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-embed") as pool:
        embedded = pool.submit(embed_all)
        analysed = [analysis.search_text(d.text) for d in drafts]
        return PreparedChunks(drafts=drafts, vectors=embedded.result(), analysed=analysed,
                              embedding_model=embedder.name)


_matching_dimensions: set[int] = set()  # sizes this process found the column to have


def _check_dimensions(embedder) -> None:
    """Refuse to embed for a column of another size: a clear error instead of the
    database's "expected 384 dimensions, not 768" on the first insert. A match is
    remembered for the process (``vectors_resize`` forgets it), so only the first
    ingestion asks the database."""
    if embedder.dimensions in _matching_dimensions:
        return
    stored = stored_dimensions()
    if stored == embedder.dimensions:
        _matching_dimensions.add(stored)
    else:
        raise EmbeddingError(
            f"{embedder.name} makes {embedder.dimensions}-dim vectors (EMBEDDING_DIMENSIONS) but the knowledge base "
            f"stores {stored}-dim vectors: run `manage.py kb_reembed --all-tenants --resize` once")


def _forget_dimensions() -> None:
    """The column's size is about to change (``vectors_resize``): the next ingestion asks again."""
    _matching_dimensions.clear()


def analyse_chunks(prepared: PreparedChunks) -> PreparedChunks:
    prepared.analysed = [analysis.search_text(d.text) for d in prepared.drafts]
    return prepared


def _lock_stats(cur, tenant_id: str) -> tuple[int, bool]:
    """Lock the tenant's statistics row (made if missing) for the rest of the transaction.
    Every write of a tenant's chunks takes it first, before any term row: writers of one
    tenant then queue here instead of locking term rows in different orders (two
    concurrent updates of different entries deadlocked: each removed its old terms, the
    other's new ones, then waited for the statistics row). The order is: key locks
    (``_lock_keys``), document rows, this row, term rows. Returns the tenant's chunk count
    and whether its chunks are in the HNSW graph."""
    sql = "SELECT chunk_count, in_hnsw FROM knowledge_corpusstats WHERE tenant_id = %s FOR UPDATE"
    cur.execute(sql, [tenant_id])
    row = cur.fetchone()
    if row is None:
        cur.execute("INSERT INTO knowledge_corpusstats (tenant_id, chunk_count, token_total) VALUES (%s, 0, 0) "
                    "ON CONFLICT (tenant_id) DO NOTHING", [tenant_id])
        # a fresh statement sees the row a concurrent first write may have inserted instead
        cur.execute(sql, [tenant_id])
        row = cur.fetchone()
    return int(row[0]), bool(row[1])


def _join_graph(cur, tenant_id: str) -> None:
    """Put all of the tenant's chunks into the HNSW graph, once, when it grows past
    ``selectors.vector.EXACT_SCAN_MAX_CHUNKS`` (call after ``_lock_stats``): ~1 ms a chunk of graph
    inserts, ~10 s at 10,000, paid by the write that crosses. Its searches may go through
    the graph from then on."""
    cur.execute("UPDATE knowledge_chunk SET in_hnsw = true WHERE tenant_id = %s AND NOT in_hnsw", [tenant_id])
    cur.execute("UPDATE knowledge_corpusstats SET in_hnsw = true WHERE tenant_id = %s", [tenant_id])


#: Adds a {model: change} object to CorpusStats.models; a model whose count reaches 0 is dropped.
MODELS_ADD_SQL = ("(SELECT coalesce(jsonb_object_agg(k, n) FILTER (WHERE n > 0), '{}'::jsonb) FROM ("
                  "SELECT k, sum(v)::bigint AS n FROM (SELECT key AS k, value::text::bigint AS v FROM jsonb_each(models) "
                  "UNION ALL SELECT key, value::text::bigint FROM jsonb_each(%s::jsonb)) x GROUP BY k) y)")


def _apply_stats(cur, tenant_id: str, removed: Iterable[tuple[str, str]], added_texts: Iterable[str],
                 added_models: dict[str, int] | None = None) -> None:
    """Update the tenant's statistics for chunks removed, as (stored search terms, embedding
    model) pairs, and added (their search terms; ``added_models``: how many of them each model
    embedded): BM25's term frequencies, one net change per term (a term both removed and added
    again, most of an edited document's, is not written at all), the chunk count and length, and
    the chunks per model. Call after ``_lock_stats``."""
    df: Counter[str] = Counter()
    models: Counter[str] = Counter(added_models or {})
    tokens = count = chunks = 0
    for search_text, model in removed:
        models[model] -= 1
        terms = search_text.split()
        for term in set(terms):
            df[term] -= 1
        tokens -= len(terms)
        count -= 1
        chunks += 1
    for search_text in added_texts:
        terms = search_text.split()
        for term in set(terms):
            df[term] += 1
        tokens += len(terms)
        count += 1
        chunks += 1
    if not chunks:
        return
    changed = sorted(t for t, d in df.items() if d)
    if changed:
        cur.execute(
            "INSERT INTO knowledge_term (tenant_id, term, df) SELECT %s, t, d "
            "FROM unnest(%s::text[], %s::int[]) AS x(t, d) "
            "ON CONFLICT (tenant_id, term) DO UPDATE SET df = knowledge_term.df + EXCLUDED.df",
            [tenant_id, changed, [df[t] for t in changed]],
        )
        fallen = [t for t in changed if df[t] < 0]
        if fallen:
            cur.execute("DELETE FROM knowledge_term WHERE tenant_id = %s AND term = ANY(%s) AND df <= 0",
                        [tenant_id, fallen])
    delta = {model: n for model, n in models.items() if n}
    cur.execute(
        "UPDATE knowledge_corpusstats SET chunk_count = chunk_count + %s, token_total = token_total + %s, "
        f"version = nextval('knowledge_corpus_version_seq'), models = {MODELS_ADD_SQL if delta else 'models'} "
        "WHERE tenant_id = %s",
        [count, tokens, *([Jsonb(delta)] if delta else []), tenant_id],
    )


def _remove_chunks_of(cur, tenant_id: str, document_ids: list[int]) -> list[tuple[str, str]]:
    """Delete the documents' chunks; returns their (stored search terms, embedding model), for
    ``_apply_stats``."""
    cur.execute("DELETE FROM knowledge_chunk WHERE tenant_id = %s AND document_id = ANY(%s) "
                "RETURNING search_text, embedding_model", [tenant_id, document_ids])
    return cur.fetchall()


def _drop_chunks(document: Document) -> None:
    """Remove a document's chunks and their share of the statistics (inside a transaction that
    holds the document's row)."""
    with connection.cursor() as wrapper:
        _lock_stats(wrapper.cursor, document.tenant_id)
        removed = _remove_chunks_of(wrapper.cursor, document.tenant_id, [document.pk])
        _apply_stats(wrapper.cursor, document.tenant_id, removed, ())


def _mark_ready(document: Document, prepared: PreparedChunks) -> None:
    document.chunk_count = len(prepared.drafts)
    document.status = Document.Status.READY
    document.error = ""
    document.processed_at = timezone.now()


def _store_chunks(document: Document, prepared: PreparedChunks) -> None:
    """Replace the document's chunks with ``prepared`` (call inside a transaction)."""
    _write_chunks(document.tenant_id, [(document, prepared)])
    _mark_ready(document, prepared)
    document.save(update_fields=["chunk_count", "status", "error", "processed_at", "updated_at"])


def _save_ready(document: Document, prepared: PreparedChunks) -> None:
    """Save the document as ready, then write its chunks (call inside a transaction, which
    hides the moment between): one save instead of an insert and an update (~1.5 ms a file)."""
    _mark_ready(document, prepared)
    document.save()
    _write_chunks(document.tenant_id, [(document, prepared)])


def _write_chunks(tenant_id: str, stored: list[tuple[Document, PreparedChunks]]) -> None:
    """Replace the chunks of several saved documents of one tenant: one DELETE of their old
    chunks, one COPY of the new ones, one update of the term statistics (inside a transaction;
    the documents' own fields are the caller's)."""
    if not stored:
        return
    with connection.cursor() as wrapper:
        count, in_hnsw = _lock_stats(wrapper.cursor, tenant_id)
        removed = _remove_chunks_of(wrapper.cursor, tenant_id, [document.pk for document, _ in stored])
        added = sum(len(prepared.drafts) for _, prepared in stored)
        if not in_hnsw and count - len(removed) + added > selectors.vector.EXACT_SCAN_MAX_CHUNKS:
            _join_graph(wrapper.cursor, tenant_id)  # before the COPY: the new rows go in with the flag
            in_hnsw = True
        rows = (
            (tenant_id, document.pk, position, draft.text, token_count, Jsonb(draft.provenance),
             prepared.vectors[position], prepared.embedding_model, search_text)
            for document, prepared in stored
            for position, (draft, (search_text, token_count)) in enumerate(zip(prepared.drafts, prepared.analysed))
        )
        copy_chunks(rows, in_hnsw=in_hnsw)
        models: Counter[str] = Counter()
        for _, prepared in stored:
            models[prepared.embedding_model] += len(prepared.drafts)
        _apply_stats(wrapper.cursor, tenant_id, removed, (a[0] for _, prepared in stored for a in prepared.analysed),
                     models)


def entry_sections(title: str, content: str) -> list[Section]:
    """An API entry is Markdown (plain text is Markdown without headings); its title
    leads every chunk so a question matching the title finds the answer."""
    sections = split_markdown(content) or [Section(text=title)]
    for section in sections:
        section.context = " > ".join(p for p in (title, section.context) if p)
        section.provenance = {**section.provenance}
    return sections


def _prepare_or_503(drafts: list[ChunkDraft]) -> PreparedChunks:
    try:
        return prepare_chunks(drafts)
    except EmbeddingError as exc:
        logger.warning("embedding failed: %s", exc)
        raise ApiError(503, "embedding_unavailable", "The embedding model is unavailable; try again later.") from None
