"""Re-embedding the knowledge base: the chunks of a model that is no longer the configured one
(``chunks_reembed``), or every chunk of every tenant into a column of a new size
(``vectors_resize``). Both work in batches that commit one by one, so an interrupted run
keeps what it did (``manage.py kb_reembed``).
"""

from __future__ import annotations

from django.db import transaction

from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge.db import HNSW_INDEX_SQL, HNSW_MAX_DIMENSIONS, stored_dimensions, vector_cursor
from knowledge.services.chunks import EMBED_BATCH, _check_dimensions, _forget_dimensions


def chunks_reembed(*, tenant=None, force: bool = False, batch_size: int = 256, progress=None) -> int:
    """Re-embed chunks whose ``embedding_model`` is not the current embedder's (all
    of them with ``force``), for one tenant or, with ``tenant=None``, every tenant.
    Works in batches, each its own transaction: interrupting keeps what is done.
    New vectors go in by binary COPY into a temporary table and one UPDATE."""
    embedder = get_embedder()
    _check_dimensions(embedder)
    done = 0
    last_id = 0
    while True:
        with vector_cursor() as cur:
            cur.execute(
                "SELECT id, text FROM knowledge_chunk WHERE id > %s"
                + (" AND tenant_id = %s" if tenant is not None else "")
                + ("" if force else " AND embedding_model <> %s")
                + " ORDER BY id LIMIT %s",
                [last_id, *([tenant.pk] if tenant is not None else []), *([] if force else [embedder.name]),
                 batch_size],
            )
            rows = cur.fetchall()
        if not rows:
            return done
        vectors = embedder.embed_documents([text for _, text in rows])
        with transaction.atomic(), vector_cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS kb_reembed (id bigint, embedding vector) ON COMMIT DELETE ROWS")
            with cur.copy("COPY kb_reembed (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector"])
                for (chunk_id, _), vector in zip(rows, vectors):
                    copy.write_row((chunk_id, vector))
            # The tenants' statistics rows first, as every writer of their chunks takes them (_lock_stats).
            cur.execute("SELECT 1 FROM knowledge_corpusstats WHERE tenant_id IN (SELECT DISTINCT c.tenant_id "
                        "FROM knowledge_chunk c JOIN kb_reembed r ON r.id = c.id) ORDER BY tenant_id FOR UPDATE")
            cur.execute("UPDATE knowledge_chunk c SET embedding = r.embedding, embedding_model = %s "
                        "FROM kb_reembed r WHERE c.id = r.id", [embedder.name])
            # New vectors: processes holding the tenants' vectors in memory must reload them.
            cur.execute("UPDATE knowledge_corpusstats SET version = nextval('knowledge_corpus_version_seq') "
                        "WHERE tenant_id IN (SELECT DISTINCT c.tenant_id FROM knowledge_chunk c "
                        "JOIN kb_reembed r ON r.id = c.id)")
        done += len(rows)
        last_id = rows[-1][0]
        if progress:
            progress(len(rows))



RESIZE_STAGING = "knowledge_reembed_staging"


def vectors_resize(*, batch_size: int = 256, progress=None) -> tuple[int, int, int]:
    """Give the vector column the current embedder's size and re-embed every chunk of
    every tenant with it (after EMBEDDING_DIMENSIONS changed; a cross-tenant job).

    New vectors are staged batch by batch (each batch commits, so an interrupted run
    resumes where it stopped), then one transaction, holding the chunk table locked,
    embeds whatever was added meanwhile, changes the column's type, moves the staged
    vectors in, rebuilds the HNSW index and invalidates every process's cached
    vectors. Searches and ingestion wait for that transaction. Returns (old size,
    new size, chunks re-embedded)."""
    embedder = get_embedder()
    dims = embedder.dimensions
    if dims > HNSW_MAX_DIMENSIONS:
        raise EmbeddingError(f"{dims}-dim vectors cannot be indexed (pgvector's HNSW takes at most "
                             f"{HNSW_MAX_DIMENSIONS}); choose a smaller EMBEDDING_DIMENSIONS")
    old = stored_dimensions()
    _forget_dimensions()
    with vector_cursor() as cur:
        cur.execute(f"SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('{RESIZE_STAGING}') "
                    "AND attname = 'embedding'")
        staged = cur.fetchone()
        if old == dims and staged is None:
            return old, dims, 0  # nothing to resize (a model change of the same size: chunks_reembed)
        if staged is not None and (staged[0] != dims or _staged_model(cur) not in (None, embedder.name)):
            cur.execute(f"DROP TABLE {RESIZE_STAGING}")  # left by a run for another size or model
        cur.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {RESIZE_STAGING} "
                    f"(id bigint PRIMARY KEY, embedding vector({dims}) NOT NULL, model varchar(200) NOT NULL)")
    done = last_id = 0
    while True:
        with vector_cursor() as cur:
            cur.execute(f"SELECT c.id, c.text FROM knowledge_chunk c LEFT JOIN {RESIZE_STAGING} s ON s.id = c.id "
                        "WHERE c.id > %s AND s.id IS NULL ORDER BY c.id LIMIT %s", [last_id, batch_size])
            rows = cur.fetchall()
        if not rows:
            break
        last_id = rows[-1][0]
        done += _stage(rows, embedder)
        if progress:
            progress(len(rows))
    with transaction.atomic(), vector_cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses to run with deferred checks pending
        # Every statistics row before the chunk table, in the order writers take them (_lock_stats): a
        # writer holding its tenant's row and waiting for the table would otherwise deadlock with this.
        cur.execute("SELECT 1 FROM knowledge_corpusstats ORDER BY tenant_id FOR UPDATE")
        cur.execute("LOCK TABLE knowledge_chunk IN ACCESS EXCLUSIVE MODE")
        cur.execute(f"SELECT c.id, c.text FROM knowledge_chunk c LEFT JOIN {RESIZE_STAGING} s ON s.id = c.id "
                    "WHERE s.id IS NULL ORDER BY c.id")
        late = cur.fetchall()  # chunks stored while the batches ran
        done += _stage(late, embedder)
        cur.execute("DROP INDEX IF EXISTS kb_chunk_embedding_hnsw")
        cur.execute("ALTER TABLE knowledge_chunk ALTER COLUMN embedding DROP NOT NULL")
        cur.execute(f"ALTER TABLE knowledge_chunk ALTER COLUMN embedding TYPE vector({dims}) USING NULL")
        cur.execute(f"UPDATE knowledge_chunk c SET embedding = s.embedding, embedding_model = s.model "
                    f"FROM {RESIZE_STAGING} s WHERE s.id = c.id")
        cur.execute("ALTER TABLE knowledge_chunk ALTER COLUMN embedding SET NOT NULL")
        cur.execute("ALTER TABLE knowledge_chunk ALTER COLUMN embedding SET STORAGE MAIN")  # as migration 0002
        cur.execute(HNSW_INDEX_SQL)  # as the model's HnswIndex
        cur.execute("UPDATE knowledge_corpusstats SET version = nextval('knowledge_corpus_version_seq')")
        cur.execute(f"DROP TABLE {RESIZE_STAGING}")
    _forget_dimensions()
    return old, dims, done


def _staged_model(cur) -> str | None:
    cur.execute(f"SELECT model FROM {RESIZE_STAGING} LIMIT 1")
    row = cur.fetchone()
    return row[0] if row else None


def _stage(rows, embedder) -> int:
    """Embed (id, text) rows into the staging table, in batches that commit one by one."""
    for start in range(0, len(rows), EMBED_BATCH):
        batch = rows[start:start + EMBED_BATCH]
        vectors = embedder.embed_documents([text for _, text in batch])
        with transaction.atomic(), vector_cursor() as cur:
            with cur.copy(f"COPY {RESIZE_STAGING} (id, embedding, model) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector", "varchar"])
                for (chunk_id, _), vector in zip(batch, vectors):
                    copy.write_row((chunk_id, vector, embedder.name))
    return len(rows)
