"""Re-embedding the knowledge base: a tenant's chunks of a model that is no longer the
configured one (``chunks_reembed``, one tenant at a time, swapped in at once), or every chunk of
every tenant into a column of a new size (``vectors_resize``). Both stage new vectors in batches
that commit one by one, so an interrupted run keeps what it did (``manage.py kb_reembed``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.db import transaction

from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge.db import HNSW_INDEX_SQL, HNSW_MAX_DIMENSIONS, stored_dimensions, vector_cursor
from knowledge.services.chunks import EMBED_BATCH, _check_dimensions, _forget_dimensions, _lock_stats
from knowledge.services.stats import _TRUE_MODELS_SQL


#: New vectors of a tenant's chunks wait here until the tenant's swap (unlogged: a crash loses only
#: staged work, which a new run redoes). A chunk's text never changes (an edit writes new chunks), so a
#: staged vector stays right for its chunk id.
TENANT_STAGING = "knowledge_reembed_tenant"


@dataclass(frozen=True)
class Reembedded:
    chunks: int  # chunks now on the configured model that were not before
    staged: int  # of them, embedded by this run (the rest were staged by an interrupted one)
    model: str


def chunks_reembed(*, tenant, force: bool = False, batch_size: int = 256, progress=None) -> Reembedded:
    """Move the tenant's chunks that another model embedded (all of them with ``force``) to the
    configured embedder. The new vectors are staged batch by batch, each batch committing, so an
    interrupted run keeps what it did and the next one embeds only the rest; then one
    transaction swaps them all in, so the tenant's searches compare vectors of the old model
    until that moment and of the new one after it, never both (``knowledge.selectors``).
    Chunks added while it ran are embedded inside that transaction."""
    embedder = get_embedder()
    _check_dimensions(embedder)
    dims = stored_dimensions()
    with vector_cursor() as cur:
        cur.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {TENANT_STAGING} (chunk_id bigint PRIMARY KEY, "
                    f"tenant_id varchar(64) NOT NULL, model varchar(200) NOT NULL, embedding vector NOT NULL)")
    todo_sql = (f"SELECT c.id, c.text FROM knowledge_chunk c LEFT JOIN {TENANT_STAGING} s ON s.chunk_id = c.id "
                "AND s.model = %s WHERE c.tenant_id = %s AND c.id > %s AND s.chunk_id IS NULL"
                + ("" if force else " AND c.embedding_model <> %s") + " ORDER BY c.id LIMIT %s")

    def todo(cur, after: int, limit: int | None):
        cur.execute(todo_sql.replace(" LIMIT %s", "" if limit is None else " LIMIT %s"),
                    [embedder.name, tenant.pk, after, *([] if force else [embedder.name]),
                     *([] if limit is None else [limit])])
        return cur.fetchall()

    staged = last_id = 0
    while True:
        with vector_cursor() as cur:
            rows = todo(cur, last_id, batch_size)
        if not rows:
            break
        last_id = rows[-1][0]
        staged += _stage_tenant(rows, embedder, tenant.pk, dims)
        if progress:
            progress(len(rows))
    with transaction.atomic(), vector_cursor() as cur:
        _lock_stats(cur, tenant.pk)  # writers of the tenant's chunks wait; its searches go on (old vectors)
        late = todo(cur, 0, None)  # stored while the batches ran
        if late:
            staged += _stage_tenant(late, embedder, tenant.pk, dims, atomic=False)
        cur.execute(f"UPDATE knowledge_chunk c SET embedding = s.embedding, embedding_model = s.model "
                    f"FROM {TENANT_STAGING} s WHERE s.chunk_id = c.id AND s.tenant_id = %s AND c.tenant_id = %s "
                    f"AND s.model = %s AND c.embedding_model IS DISTINCT FROM s.model" if not force else
                    f"UPDATE knowledge_chunk c SET embedding = s.embedding, embedding_model = s.model "
                    f"FROM {TENANT_STAGING} s WHERE s.chunk_id = c.id AND s.tenant_id = %s AND c.tenant_id = %s "
                    f"AND s.model = %s", [tenant.pk, tenant.pk, embedder.name])
        moved = cur.rowcount
        # The model counts from the chunks, and a new version: processes holding the tenant's vectors reload.
        cur.execute(f"UPDATE knowledge_corpusstats SET models = ({_TRUE_MODELS_SQL}), "
                    "version = nextval('knowledge_corpus_version_seq') WHERE tenant_id = %s", [tenant.pk, tenant.pk])
        cur.execute(f"DELETE FROM {TENANT_STAGING} WHERE tenant_id = %s", [tenant.pk])
    if progress and late:
        progress(len(late))
    return Reembedded(chunks=max(moved, 0), staged=staged, model=embedder.name)


def _stage_tenant(rows, embedder, tenant_id: str, dims: int, atomic: bool = True) -> int:
    """Embed (id, text) rows into the tenant staging table, in batches that commit one by one
    (inside the caller's transaction when not ``atomic``)."""
    for start in range(0, len(rows), EMBED_BATCH):
        batch = rows[start:start + EMBED_BATCH]
        vectors = embedder.embed_documents([text for _, text in batch])
        with transaction.atomic() if atomic else contextlib.nullcontext(), vector_cursor() as cur:
            with cur.copy(f"COPY {TENANT_STAGING} (chunk_id, tenant_id, model, embedding) FROM STDIN "
                          "WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "varchar", "varchar", "vector"])
                for (chunk_id, _), vector in zip(batch, vectors):
                    copy.write_row((chunk_id, tenant_id, embedder.name, vector))
    return len(rows)


def reembed_check() -> None:
    """Raise ``EmbeddingError`` when the configured embedder cannot write into the vector column
    (another size: ``--resize`` first), before any tenant is started."""
    _check_dimensions(get_embedder())


def tenants_to_reembed(*, force: bool = False) -> list[tuple[str, int]]:
    """(tenant id, chunks to move) of every tenant with chunks another model embedded (all its
    chunks with ``force``), the smallest first: read from the chunks themselves (one scan, a
    cross-tenant maintenance read), not from the statistics that the search relies on."""
    name = get_embedder().name
    with vector_cursor() as cur:
        cur.execute("SELECT tenant_id, count(*) FILTER (WHERE %s OR embedding_model <> %s) AS n FROM knowledge_chunk "
                    "GROUP BY tenant_id ORDER BY n, tenant_id", [force, name])
        return [(tenant_id, int(n)) for tenant_id, n in cur.fetchall() if n]


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
        cur.execute("UPDATE knowledge_corpusstats SET version = nextval('knowledge_corpus_version_seq'), "
                    "models = CASE WHEN chunk_count > 0 THEN jsonb_build_object(%s::text, chunk_count) "
                    "ELSE '{}'::jsonb END", [embedder.name])
        cur.execute(f"DROP TABLE {RESIZE_STAGING}")
        cur.execute(f"DROP TABLE IF EXISTS {TENANT_STAGING}")  # staged for the old column size
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
