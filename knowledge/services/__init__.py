"""Writing the knowledge base: upload, upsert, (re-)process, delete, re-embed.

Ingestion reads top to bottom: parse (``ingestion.parsers``) → chunk
(``ingestion.chunking``) → embed in batches → analyse for BM25 → one transaction
that swaps the document's chunks (binary COPY), updates the tenant's term
statistics and marks the document ready. Embedding, the slow part, happens
before the transaction opens, so a failure leaves everything stored unchanged
and no lock is held while the model runs. The bulk import (``documents_import``)
embeds the next file on a worker thread while one is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePath

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.exceptions import TimeoutException
from psycopg.types.json import Jsonb

from agent_project.errors import ApiError
from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge import analysis, selectors
from knowledge.db import HNSW_INDEX_SQL, HNSW_MAX_DIMENSIONS, copy_chunks, stored_dimensions, vector_cursor
from knowledge.ingestion.chunking import ChunkDraft, chunk_sections
from knowledge.ingestion.parsers import (DocumentError, ParseTimeout, Section, file_type_of, parse_file, preflight,
                                         split_markdown)
from knowledge.models import Document

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
LIVE_STATUSES = (Document.Status.PENDING, Document.Status.PROCESSING, Document.Status.READY)
IMPORT_ID_PREFIX = "import:"  # kb_import's external_id: the prefix and the file's path
_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*")


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def checksum_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def api_error(exc: DocumentError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.details)


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


@contextmanager
def _files_removed_on_failure():
    """Yields a list for the names of files saved inside the block; if the block fails
    (its transaction rolls back) they are deleted again instead of staying behind as
    orphans in the media folder."""
    saved: list[tuple] = []
    try:
        yield saved
    except BaseException:
        for storage, name in saved:
            storage.delete(name)
        raise


def _save_file(document: Document, checksum: str, filename: str, data: bytes, saved: list) -> None:
    document.source_file.save(f"{checksum[:16]}-{filename}", ContentFile(data), save=False)
    saved.append((document.source_file.storage, document.source_file.name))


# --- the pipeline pieces ---------------------------------------------------------------

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
    ``selectors.EXACT_SCAN_MAX_CHUNKS`` (call after ``_lock_stats``): ~1 ms a chunk of graph
    inserts, ~10 s at 10,000, paid by the write that crosses. Its searches may go through
    the graph from then on."""
    cur.execute("UPDATE knowledge_chunk SET in_hnsw = true WHERE tenant_id = %s AND NOT in_hnsw", [tenant_id])
    cur.execute("UPDATE knowledge_corpusstats SET in_hnsw = true WHERE tenant_id = %s", [tenant_id])


def _apply_stats(cur, tenant_id: str, removed_texts, added_texts) -> None:
    """Update the tenant's BM25 statistics for chunks removed and added (their stored
    search terms), one net change per term: a term both removed and added again (most of an
    edited document's) is not written at all. Call after ``_lock_stats``."""
    df: Counter[str] = Counter()
    tokens = count = chunks = 0
    for sign, texts in ((-1, removed_texts), (1, added_texts)):
        for search_text in texts:
            terms = search_text.split()
            for term in set(terms):
                df[term] += sign
            tokens += sign * len(terms)
            count += sign
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
    cur.execute(
        "UPDATE knowledge_corpusstats SET chunk_count = chunk_count + %s, token_total = token_total + %s, "
        "version = nextval('knowledge_corpus_version_seq') WHERE tenant_id = %s",
        [count, tokens, tenant_id],
    )


def _remove_chunks_of(cur, tenant_id: str, document_ids: list[int]) -> list[str]:
    """Delete the documents' chunks; returns their stored search terms (for ``_apply_stats``)."""
    cur.execute("DELETE FROM knowledge_chunk WHERE tenant_id = %s AND document_id = ANY(%s) RETURNING search_text",
                [tenant_id, document_ids])
    return [row[0] for row in cur.fetchall()]


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
        if not in_hnsw and count - len(removed) + added > selectors.EXACT_SCAN_MAX_CHUNKS:
            _join_graph(wrapper.cursor, tenant_id)  # before the COPY: the new rows go in with the flag
            in_hnsw = True
        rows = (
            (tenant_id, document.pk, position, draft.text, token_count, Jsonb(draft.provenance),
             prepared.vectors[position], prepared.embedding_model, search_text)
            for document, prepared in stored
            for position, (draft, (search_text, token_count)) in enumerate(zip(prepared.drafts, prepared.analysed))
        )
        copy_chunks(rows, in_hnsw=in_hnsw)
        _apply_stats(wrapper.cursor, tenant_id, removed, (a[0] for _, prepared in stored for a in prepared.analysed))


def _sections_of(document: Document) -> list[Section]:
    if document.source_kind == Document.Source.ENTRY:
        return entry_sections(document.title, document.content)
    missing = DocumentError(422, "file_missing", "The document's file is no longer stored; upload it again.")
    if not document.source_file:
        raise missing
    try:
        with document.source_file.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:  # its message names the server's media path
        raise missing from None
    return parse_file(data, document.original_name or document.source_file.name)[1]


def entry_sections(title: str, content: str) -> list[Section]:
    """An API entry is Markdown (plain text is Markdown without headings); its title
    leads every chunk so a question matching the title finds the answer."""
    sections = split_markdown(content) or [Section(text=title)]
    for section in sections:
        section.context = " > ".join(p for p in (title, section.context) if p)
        section.provenance = {**section.provenance}
    return sections


# --- documents -----------------------------------------------------------------------

@dataclass
class UploadResult:
    document: Document
    outcome: str  # created | duplicate | queued


def _send_processing(document_id: int) -> bool:
    """Queue the document's processing task; False when the broker cannot be reached (the
    document stays ``pending``, and ``documents_recover`` queues it again later)."""
    from django_q.tasks import async_task

    try:
        async_task("knowledge.tasks.document_process_task", document_id, task_name=f"kb-document-{document_id}")
    except Exception as exc:  # noqa: BLE001 - a broker error of any kind: the upload itself is stored
        logger.warning("could not queue document %s (%s); it will be queued again later", document_id, exc)
        return False
    return True


def _enqueue_processing(document: Document) -> None:
    """Queue the document's processing once the transaction commits."""
    document_id = document.pk
    transaction.on_commit(lambda: _send_processing(document_id))


def document_upload(*, tenant, filename: str, data: bytes, title: str = "", tags: list[str] | None = None,
                    source_kind: str = Document.Source.UPLOAD, metadata: dict | None = None) -> UploadResult:
    """Store an uploaded file as a document.

    Identical content already in the tenant's KB (not failed) is not ingested again
    (outcome ``duplicate``). Small files are parsed, embedded and stored before this
    returns (``created``); a file over ``KB_SYNC_MAX_BYTES`` or with more than
    ``KB_SYNC_MAX_CHUNKS`` chunks is stored ``pending`` and processed by a django-q2
    task after the transaction commits (``queued``). A file that cannot be parsed
    raises ``DocumentError`` and stores nothing.
    """
    filename = PurePath(filename or "upload").name
    try:
        file_type = file_type_of(filename)
        max_bytes = _setting("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
        if len(data) > max_bytes:
            raise DocumentError(413, "file_too_large", f"The file is {len(data)} bytes; the limit is {max_bytes}.",
                                {"bytes": len(data), "limit": max_bytes})
    except DocumentError as exc:
        raise api_error(exc) from None
    checksum = checksum_of(data)
    existing = Document.objects.filter(tenant=tenant, checksum=checksum, status__in=LIVE_STATUSES).first()
    if existing is not None:
        return UploadResult(existing, "duplicate")

    fields = dict(tenant=tenant, title=(title or PurePath(filename).stem)[:300], source_kind=source_kind,
                  file_type=file_type, original_name=filename, checksum=checksum, tags=list(tags or []),
                  metadata=metadata or {})
    prepared = None
    try:
        if len(data) <= _setting("KB_SYNC_MAX_BYTES", 1024 * 1024):
            try:  # a file too slow to read in the request goes to the worker, whose budget is longer
                drafts = chunk_drafts(parse_file(data, filename, max_seconds=_setting("KB_SYNC_PARSE_SECONDS", 10))[1])
            except ParseTimeout:
                drafts = None
            if drafts is not None and len(drafts) <= _setting("KB_SYNC_MAX_CHUNKS", 64):
                prepared = _prepare_or_503(drafts)
        else:
            preflight(data, filename)  # a locked or broken big file: 422 now, not 202 and a failure later
    except DocumentError as exc:
        raise api_error(exc) from None

    with _files_removed_on_failure() as saved, transaction.atomic():
        _lock_keys(tenant.pk, [f"checksum:{checksum}"])
        existing = Document.objects.filter(tenant=tenant, checksum=checksum, status__in=LIVE_STATUSES).first()
        if existing is not None:  # stored by a concurrent upload since the check above
            return UploadResult(existing, "duplicate")
        document = Document(**fields)
        _save_file(document, checksum, filename, data, saved)
        if prepared is None:
            document.save()
            _enqueue_processing(document)
            return UploadResult(document, "queued")
        _save_ready(document, prepared)
    return UploadResult(document, "created")


def document_import(*, tenant, name: str, data: bytes, tags: list[str] | None = None) -> UploadResult:
    """Import one file synchronously. ``name`` identifies the file (its path):
    identical content already stored is ``skipped``; a file imported before under
    the same name whose content changed is re-processed in place (``updated``);
    otherwise ``created``. Raises ``DocumentError`` or ``EmbeddingError`` and
    stores nothing when the file cannot be ingested."""
    file_type_of(PurePath(name).name)
    checksum = checksum_of(data)
    existing = _stored_copy(tenant, checksum)
    if existing is not None:
        return UploadResult(existing, "skipped")
    return _store_import(tenant=tenant, name=name, data=data, checksum=checksum,
                         prepared=_prepare_file(name, data), tags=tags)


@dataclass
class FileImport:
    path: Path
    result: UploadResult | None = None
    error: Exception | None = None  # DocumentError, EmbeddingError, OSError or another failure: nothing stored


def documents_import(*, tenant, paths: Iterable[Path], tags: list[str] | None = None) -> Iterator[FileImport]:
    """Import files in order, each as ``document_import`` would and in its own
    transaction, yielding one ``FileImport`` per file as it is stored (the bulk
    import command). While one file is written, the next is parsed and embedded on a
    worker thread when the embedder allows it (``overlaps_writes``): the model leaves
    part of the CPU idle and the writes run in the database server, so their time
    overlaps instead of adding up. torch instead embeds two files at once on one
    thread each (``import_streams``: the process's torch threads are halved while the
    import runs, so call this from a command or task, not beside live queries). A file
    that cannot be read or ingested is reported and the rest go on."""
    try:
        embedder = get_embedder()
        _check_dimensions(embedder)  # here, so the worker thread never needs the database
    except EmbeddingError:  # misconfigured: every file reports the error below
        embedder = None
    with embedder.import_streams() if embedder is not None else contextlib.nullcontext(1) as streams:
        if embedder is not None and embedder.overlaps_writes:
            workers = max(1, streams)
        else:
            workers = streams if streams > 1 else 0
        yield from _import_files(tenant=tenant, paths=paths, tags=tags, workers=workers,
                                 per_thread=embedder.import_thread_setup if embedder is not None else None)


def _import_files(*, tenant, paths: Iterable[Path], tags, workers: int, per_thread) -> Iterator[FileImport]:
    """``documents_import``'s loop: ``workers`` files embedded ahead on worker threads while
    the oldest is written on this one (0: each file embedded here, then written)."""
    if workers:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kb-import", initializer=per_thread)
    else:
        pool = _InPlace()

    def start(path: Path):
        try:
            data = path.read_bytes()
            file_type_of(path.name)
        except (OSError, DocumentError) as exc:
            return FileImport(path, error=exc)
        checksum = checksum_of(data)
        existing = _stored_copy(tenant, checksum)
        if existing is not None:  # unchanged files cost no embedding
            return FileImport(path, UploadResult(existing, "skipped"))
        return path, data, checksum, pool.submit(_prepare_file, str(path), data, analyse=False)

    def finish(started) -> FileImport:
        if isinstance(started, FileImport):
            return started
        path, data, checksum, future = started
        try:
            # Stemming is pure Python: here it overlaps the next file's embedding (measured:
            # overhead 5.6-7.6% with it on the worker thread, 3.1-4.8% here).
            prepared = analyse_chunks(future.result())
            return FileImport(path, _store_import(tenant=tenant, name=str(path), data=data, checksum=checksum,
                                                  prepared=prepared, tags=tags))
        except (DocumentError, EmbeddingError) as exc:
            return FileImport(path, error=exc)
        except Exception as exc:  # a file that trips a bug or the database: reported, the rest go on
            logger.exception("importing %s failed", path)
            return FileImport(path, error=exc)

    ahead: deque = deque()  # started files, oldest first: results come out in the given order
    try:
        for path in paths:
            ahead.append(start(Path(path)))
            while len(ahead) > workers:
                yield finish(ahead.popleft())
        while ahead:
            yield finish(ahead.popleft())
    finally:  # interrupted: waits for the files being embedded, stores nothing more
        pool.shutdown(cancel_futures=True)


class _InPlace:
    """The executor interface, running each call at once (an embedder that should not
    run beside the writes)."""

    def submit(self, fn, *args, **kwargs) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, cancel_futures: bool = False) -> None:
        pass


def _stored_copy(tenant, checksum: str) -> Document | None:
    """The tenant's ready document with this content, newest first. Asked twice for every
    imported file, and almost always answered "none": one plain query (~0.3 ms) instead of
    the ORM's (~1.4 ms, most of it building the SQL), the document loaded only when found."""
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM knowledge_document WHERE tenant_id = %s AND checksum = %s AND status = %s "
                    "ORDER BY created_at DESC, id DESC LIMIT 1", [tenant.pk, checksum, Document.Status.READY])
        row = cur.fetchone()
    return None if row is None else Document.objects.filter(tenant=tenant, pk=row[0]).first()


def _prepare_file(name: str, data: bytes, analyse: bool = True) -> PreparedChunks:
    """Parse, chunk, embed (and analyse) a file (on the import's worker thread: the column
    size was checked before, so no database access)."""
    _, sections = parse_file(data, PurePath(name).name)
    return prepare_chunks(chunk_drafts(sections), analyse=analyse)


def readable_name(name: str) -> str:
    """A path as text PostgreSQL can store: a name that is not UTF-8 on disk (a Windows zip's
    "caf\xe9.txt") reaches Python with surrogate escapes, which no text column accepts; its bytes
    are read as cp1252 instead."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("cp1252", errors="replace")


def import_id(name: str) -> str:
    """kb_import's ``external_id`` for the file at path ``name``: the prefix and the path, or, for
    a path too long for the column (200) or not UTF-8 on disk, its (readable) end and a hash of its
    bytes (cut to 200, two long paths ending alike were one document, overwritten by each in turn;
    read as cp1252, "caf\xe9.txt" would be "café.txt")."""
    readable = readable_name(name)
    whole = f"{IMPORT_ID_PREFIX}{readable}"
    if len(whole) <= 200 and readable == name:
        return whole
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    return f"{IMPORT_ID_PREFIX}…{readable[-(200 - len(IMPORT_ID_PREFIX) - 18):]}#{digest}"


def _legacy_import_id(name: str) -> str | None:
    """The key a long path had before ``import_id`` hashed it (the path cut to 200), so that an
    update of a file imported then finds its document."""
    whole = f"{IMPORT_ID_PREFIX}{name}"
    return whole[:200] if len(whole) > 200 and readable_name(name) == name else None


def _locked_by_external_id(tenant, external_id: str) -> Document | None:
    """The tenant's document with this ``external_id``, its row locked for the transaction;
    loaded through the ORM only when there is one (as ``_stored_copy``)."""
    with connection.cursor() as cur:
        cur.execute("SELECT id FROM knowledge_document WHERE tenant_id = %s AND external_id = %s FOR UPDATE",
                    [tenant.pk, external_id])
        row = cur.fetchone()
    return None if row is None else Document.objects.filter(tenant=tenant, pk=row[0]).first()


def _store_import(*, tenant, name: str, data: bytes, checksum: str, prepared: PreparedChunks,
                  tags: list[str] | None) -> UploadResult:
    external_id = import_id(name)
    filename = PurePath(readable_name(name)).name
    with _files_removed_on_failure() as saved, transaction.atomic():
        _lock_keys(tenant.pk, [f"checksum:{checksum}", f"external:{external_id}"])
        existing = _stored_copy(tenant, checksum)  # the same content stored since it was checked
        if existing is not None:
            return UploadResult(existing, "skipped")
        document = _locked_by_external_id(tenant, external_id)
        legacy = _legacy_import_id(name)
        if document is None and legacy:
            document = _locked_by_external_id(tenant, legacy)
            if document is not None:
                document.external_id = external_id
        outcome = "updated" if document is not None else "created"
        if document is None:
            document = Document(tenant=tenant, external_id=external_id, source_kind=Document.Source.IMPORT,
                                title=PurePath(filename).stem[:300], tags=list(tags or []))
        old_file = document.source_file.name if document.source_file else ""
        document.file_type, document.original_name, document.checksum = file_type_of(filename), filename, checksum
        _save_file(document, checksum, filename, data, saved)
        _save_ready(document, prepared)
        if old_file:
            storage = document.source_file.storage
            transaction.on_commit(lambda: storage.delete(old_file))
    return UploadResult(document, outcome)


def _prepare_or_503(drafts: list[ChunkDraft]) -> PreparedChunks:
    try:
        return prepare_chunks(drafts)
    except EmbeddingError as exc:
        logger.warning("embedding failed: %s", exc)
        raise ApiError(503, "embedding_unavailable", "The embedding model is unavailable; try again later.") from None


def _task_timeout() -> int:
    return int(settings.Q_CLUSTER.get("timeout") or 600)


def document_process(*, document_id: int) -> Document | None:
    """Process a pending document (the django-q2 task's body): claim it with a
    conditional update so two workers never process it twice, then parse, embed
    and store, ending ``ready`` or ``failed`` with a readable error. A document that
    was ready before (a re-process) and fails keeps its chunks and ``ready``, with the
    error recorded: failed, they stayed searchable, and uploading the file again
    stored every passage twice."""
    # A claim older than the task timeout belongs to a worker that died: django-q2's
    # retry (after Q_CLUSTER["retry"] > timeout) may take it over, within the attempts.
    stale = timezone.now() - timedelta(seconds=_task_timeout())
    claimable = Q(status=Document.Status.PENDING) | Q(status=Document.Status.PROCESSING, updated_at__lt=stale)
    claimed = Document.objects.filter(claimable, pk=document_id,
                                      attempts__lt=_setting("KB_PROCESS_MAX_ATTEMPTS", 3)).update(
        status=Document.Status.PROCESSING, error="", updated_at=timezone.now(), attempts=F("attempts") + 1)
    document = Document.objects.filter(pk=document_id).first()
    if not claimed or document is None:
        return document
    try:
        prepared = prepare_chunks(chunk_drafts(_sections_of(document)))
        if not prepared.drafts:
            raise DocumentError(422, "empty_document", "No text could be extracted from this document.")
        with transaction.atomic():
            locked = Document.objects.select_for_update().filter(pk=document_id).first()
            if locked is None or locked.status != Document.Status.PROCESSING:
                return locked  # deleted or re-queued meanwhile
            _store_chunks(locked, prepared)
        return locked
    except DocumentError as exc:
        if exc.code != "file_missing":
            # The file as today's parser reads it (a hidden sheet no longer indexed, no text left):
            # the chunks of an earlier reading are not what it holds, so they go too.
            _process_failed(document, exc.message, drop_chunks=True)
            document.refresh_from_db()
            return document
        message = exc.message
    except EmbeddingError as exc:
        message = f"Embedding failed: {exc}"
    except TimeoutException:  # django-q2 stops a task past Q_TIMEOUT with this SystemExit: record it, let it stop
        _process_failed(document, f"Processing took longer than the worker's time limit ({_task_timeout()} s, "
                                  "Q_TIMEOUT): split the file, or raise Q_TIMEOUT and re-process it.")
        raise
    except Exception as exc:  # a task must record why it failed, whatever it was
        logger.exception("processing document %s failed", document_id)
        message = f"Processing failed: {exc.__class__.__name__}: {exc}"
    _process_failed(document, message)
    document.refresh_from_db()
    return document


def _process_failed(document: Document, message: str, drop_chunks: bool = False) -> None:
    """End a processing run that failed: ``failed``, or, for a document that has chunks from an
    earlier run and a failure that says nothing against them (the embedder, the time limit, a
    missing file), ``ready`` with the error (those chunks are what a search finds). With
    ``drop_chunks`` (the file itself was refused) its chunks are removed."""
    if drop_chunks and document.chunk_count:
        with transaction.atomic():
            if Document.objects.select_for_update().filter(pk=document.pk,
                                                           status=Document.Status.PROCESSING).exists():
                _drop_chunks(document)
                Document.objects.filter(pk=document.pk).update(
                    status=Document.Status.FAILED, error=message[:2000], chunk_count=0, updated_at=timezone.now())
        return
    still = Document.objects.filter(pk=document.pk, status=Document.Status.PROCESSING)
    if document.processed_at is not None and document.chunk_count:
        still.update(status=Document.Status.READY, updated_at=timezone.now(),
                     error=f"Re-processing failed; the chunks of the previous processing are kept. {message}"[:2000])
    else:
        still.update(status=Document.Status.FAILED, error=message[:2000], updated_at=timezone.now())


def documents_recover(*, now=None, limit: int = 500) -> dict:
    """CROSS-TENANT. Documents whose processing task was lost: ``processing`` for longer than
    django-q2's task timeout + 1 minute (its worker was killed: a deploy, the OOM killer; with
    the Redis broker such a task is gone) go back to ``pending`` and are queued again, or, after
    ``KB_PROCESS_MAX_ATTEMPTS`` runs, end ``failed`` (or ``ready`` with the error, for a
    re-process) with a readable error; ``pending`` for ``KB_PENDING_REQUEUE_SECONDS`` (the
    broker was down when it was queued) are queued again. Each change is a conditional update
    on the status and ``updated_at`` that were read, and a re-queue sets ``updated_at`` to now;
    a document queued twice is processed once (the claim). Reads ids, statuses and times only.
    Answers ``{"requeued", "failed", "skipped"}``."""
    from django_scopes import scopes_disabled

    now = now or timezone.now()
    dead_before = now - timedelta(seconds=_task_timeout() + 60)
    pending_before = now - timedelta(seconds=_setting("KB_PENDING_REQUEUE_SECONDS", 600))
    max_attempts = _setting("KB_PROCESS_MAX_ATTEMPTS", 3)
    counts = {"requeued": 0, "failed": 0, "skipped": 0}
    with scopes_disabled():
        stuck = list(Document.objects.filter(
            Q(status=Document.Status.PROCESSING, updated_at__lt=dead_before)
            | Q(status=Document.Status.PENDING, updated_at__lt=pending_before),
        ).only("id", "tenant_id", "status", "updated_at", "attempts", "processed_at", "chunk_count")
            .order_by("updated_at", "id")[:limit])
        for document in stuck:
            unchanged = Document.objects.filter(pk=document.pk, status=document.status, updated_at=document.updated_at)
            if document.status == Document.Status.PROCESSING and document.attempts >= max_attempts:
                if not unchanged.update(updated_at=now):  # claimed for this outcome
                    counts["skipped"] += 1
                    continue
                _process_failed(document, f"Processing stopped {document.attempts} times without finishing (its "
                                          f"worker was stopped: killed, or past the {_task_timeout()} s time limit).")
                counts["failed"] += 1
                continue
            if not unchanged.update(status=Document.Status.PENDING, updated_at=now):
                counts["skipped"] += 1
                continue
            _send_processing(document.pk)
            counts["requeued"] += 1
    return counts


def document_reprocess(*, document: Document) -> Document:
    """Queue a document to be parsed and embedded again (e.g. after a parser fix);
    its current chunks stay searchable until the new ones replace them."""
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(status=Document.Status.PENDING, error="", attempts=0,
                                                       updated_at=timezone.now())
        _enqueue_processing(document)
    document.refresh_from_db()
    return document


def document_delete(*, document: Document) -> None:
    """Delete a document, its chunks (and their share of the statistics) and its file."""
    with transaction.atomic():
        # The document row first, as every other writer locks it (before the statistics row).
        if not Document.objects.select_for_update().filter(tenant_id=document.tenant_id, pk=document.pk).exists():
            return  # deleted meanwhile
        _drop_chunks(document)
        file = document.source_file
        document.delete()
        if file:
            transaction.on_commit(lambda: file.storage.delete(file.name))


# --- API entries (upsert) ---------------------------------------------------------------

def _entry_checksum(entry: dict) -> str:
    return checksum_of(f"{entry['title']}\n\n{entry['content']}".encode())


def entries_upsert(*, tenant, entries: list[dict]) -> list[dict]:
    """Create or update text entries (``title``, ``content``, ``tags``, ``metadata``,
    ``external_id``). The same ``external_id`` updates that document in place;
    unchanged title+content is not re-embedded (tags/metadata still update). All
    entries are embedded first and written in one transaction: all or nothing.
    Entries are applied in order, as if one after another: a later entry with the same
    content (and no ``external_id``) finds the document an earlier one created."""
    # A title is one line: with a line break in it, "title\n\ncontent" (the checksum's text) could be
    # split two ways, and moving a paragraph between title and content looked unchanged. Only line
    # breaks change (a title stored with two spaces keeps its checksum).
    entries = [{**entry, "title": _LINE_BREAKS.sub(" ", entry["title"]).strip()} for entry in entries]
    reserved = [e["external_id"] for e in entries if (e.get("external_id") or "").startswith(IMPORT_ID_PREFIX)]
    if reserved:
        raise ApiError(400, "validation_error", f"external_id {reserved[0]!r}: ids starting with "
                       f"{IMPORT_ID_PREFIX!r} name files that kb_import keeps.", {"external_id": reserved[0]})
    keyed = [(entry, _entry_checksum(entry), entry.get("external_id") or None) for entry in entries]

    def drafts_of(entry: dict) -> list[ChunkDraft]:
        return chunk_drafts(entry_sections(entry["title"], entry["content"]))

    # What is stored now (one query per kind of key, not one per entry), and which entries change it.
    found = _entry_documents(tenant, keyed)
    _refuse_other_kinds(found)
    plans, changed, earlier = [], [], set()  # earlier: the contents this request's earlier entries store
    for entry, checksum, external_id in keyed:
        plans.append([entry, checksum, external_id, None])
        repeated = not external_id and checksum in earlier  # it will find that entry's document
        if not repeated and not _entry_unchanged(found.get(_entry_key(checksum, external_id)), checksum):
            changed.append((plans[-1], drafts_of(entry)))
        earlier.add(checksum)
    # Every changed entry's chunks embedded together, in full batches (with Gemini, 100 one-chunk
    # entries are one request instead of 100).
    prepared = _prepare_or_503([draft for _, drafts in changed for draft in drafts])
    start = 0
    for plan, drafts in changed:
        end = start + len(drafts)
        plan[3] = PreparedChunks(drafts=drafts, vectors=prepared.vectors[start:end],
                                 analysed=prepared.analysed[start:end], embedding_model=prepared.embedding_model)
        start = end

    results, stored, new = [], {}, {}
    with transaction.atomic():
        # A concurrent upsert of the same external_id (or, without one, the same content) may
        # have written since the lookups above: look again, locked, under a lock it also takes.
        _lock_keys(tenant.pk, [f"external:{external_id}" if external_id else f"checksum:{checksum}"
                               for _, checksum, external_id, _ in plans])
        found = _entry_documents(tenant, keyed, lock=True)
        _refuse_other_kinds(found)
        for entry, checksum, external_id, prepared in plans:
            key = _entry_key(checksum, external_id)
            existing = found.get(key)
            if _entry_unchanged(existing, checksum):
                prepared = None  # a concurrent request (or an earlier entry of this one) stored this very content
            elif prepared is None:
                prepared = _prepare_or_503(drafts_of(entry))  # changed since the lookup: embedded here (rare)
            if existing is not None:
                document, action = existing, "unchanged" if prepared is None else "updated"
            else:
                document = Document(tenant=tenant, source_kind=Document.Source.ENTRY, file_type="entry",
                                    external_id=external_id)
                action = "created"
            old_checksum = document.checksum
            document.title = entry["title"][:300]
            document.content = entry["content"]
            document.checksum = checksum
            if "tags" in entry or existing is None:
                document.tags = list(dict.fromkeys(entry.get("tags") or []))
            if "metadata" in entry or existing is None:
                document.metadata = entry.get("metadata") or {}
            if prepared is not None:
                # Ready as saved (its chunks are written below, in this transaction), as a later
                # entry's lookup would find it after a commit. A document changed twice keeps the last.
                _mark_ready(document, prepared)
                stored[id(document)] = (document, prepared)
            if document.pk is None:  # inserted below, all at once (a later entry may still change it)
                new[id(document)] = document
            else:
                document.save()
            results.append({"action": action, "document": document})
            # What the lookups would now return for later entries of this request.
            found[key] = document
            if found.get(("checksum", old_checksum)) is document and old_checksum != checksum:
                del found[("checksum", old_checksum)]
            if document.status == Document.Status.READY and document.source_kind == Document.Source.ENTRY:
                found.setdefault(("checksum", checksum), document)
        # The new documents in one INSERT (one at a time: 229 of the ~850 ms that 272 one-chunk entries
        # took besides the model), then every entry's chunks in one DELETE, one COPY and one statistics
        # update: one entry at a time, these writes and the lookups made an upsert of 272 one-chunk
        # entries 30% slower than embedding them.
        Document.objects.bulk_create(list(new.values()))
        _write_chunks(tenant.pk, list(stored.values()))
    return results


def _refuse_other_kinds(found: dict) -> None:
    """An ``external_id`` held by an uploaded or imported document is not an entry's to replace:
    its file would come back with the next re-process or import (409)."""
    for (kind, key), document in found.items():
        if kind == "external" and document.source_kind != Document.Source.ENTRY:
            raise ApiError(409, "external_id_conflict", f"external_id {key!r} belongs to a document of kind "
                           f"{document.source_kind!r} (id {document.pk}); an entry cannot replace it.",
                           {"external_id": key, "document_id": document.pk, "source_kind": document.source_kind})


def _entry_key(checksum: str, external_id: str | None) -> tuple[str, str]:
    """An entry is the document with its ``external_id`` or, without one, a ready entry
    document with the same content."""
    return ("external", external_id) if external_id else ("checksum", checksum)


def _entry_unchanged(existing: Document | None, checksum: str) -> bool:
    return existing is not None and existing.checksum == checksum and existing.status == Document.Status.READY


def _entry_documents(tenant, keyed: list[tuple[dict, str, str | None]], lock: bool = False) -> dict:
    """{entry key: document} for the entries' keys (``lock``: FOR UPDATE, in a transaction).
    A document found by both lookups is one object: what an entry changes in it, a later
    entry reaching it by the other key sees (two copies of one row, the second saved last,
    had written the first's stale content back over an update whose chunks were written)."""
    external_ids = [external_id for _, _, external_id in keyed if external_id]
    checksums = [checksum for _, checksum, external_id in keyed if not external_id]
    found, by_pk = {}, {}
    if external_ids:
        by_external = Document.objects.filter(tenant=tenant, external_id__in=external_ids)
        for document in (by_external.select_for_update() if lock else by_external):
            found[("external", document.external_id)] = by_pk.setdefault(document.pk, document)
    if checksums:
        by_content = Document.objects.filter(tenant=tenant, checksum__in=checksums, source_kind=Document.Source.ENTRY,
                                             status=Document.Status.READY)
        for document in (by_content.select_for_update() if lock else by_content):  # newest first, as .first()
            found.setdefault(("checksum", document.checksum), by_pk.setdefault(document.pk, document))
    return found


# --- re-embedding --------------------------------------------------------------------

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
    _matching_dimensions.clear()
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
    _matching_dimensions.clear()
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

# --- keyword index upkeep --------------------------------------------------------------

@dataclass(frozen=True)
class StatsCheck:
    chunk_count: tuple[int, int]  # (stored, from the chunks)
    token_total: tuple[int, int]
    terms_wrong: int  # terms whose stored df differs from the chunks' (missing or extra included)
    terms_total: int  # distinct terms in the chunks
    outside_graph: int = 0  # chunks of a tenant in the HNSW graph (CorpusStats.in_hnsw) that are not in it

    @property
    def ok(self) -> bool:
        return self.chunk_count[0] == self.chunk_count[1] and self.token_total[0] == self.token_total[1] \
            and not self.terms_wrong and not self.outside_graph


# The tenant's term document frequencies as its chunks have them (one row per distinct term of a chunk).
_TRUE_DF_SQL = ("SELECT t.term, count(*)::int AS df FROM knowledge_chunk c "
                "CROSS JOIN LATERAL (SELECT DISTINCT term FROM unnest(string_to_array(c.search_text, ' ')) AS term "
                "WHERE term <> '') t WHERE c.tenant_id = %s GROUP BY t.term")


def stats_check(*, tenant) -> StatsCheck:
    """Compare the tenant's stored BM25 statistics with what its chunks say (changes nothing)."""
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(token_count), 0) FROM knowledge_chunk WHERE tenant_id = %s",
                    [tenant.pk])
        true_count, true_tokens = cur.fetchone()
        cur.execute("SELECT chunk_count, token_total, in_hnsw FROM knowledge_corpusstats WHERE tenant_id = %s",
                    [tenant.pk])
        stored = cur.fetchone() or (0, 0, False)
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
                      int(outside))


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
                "version = nextval('knowledge_corpus_version_seq') FROM (SELECT count(*) AS n, "
                "coalesce(sum(token_count), 0) AS tokens FROM knowledge_chunk WHERE tenant_id = %s) c "
                "WHERE s.tenant_id = %s RETURNING s.chunk_count, s.in_hnsw",
                [tenant.pk, tenant.pk],
            )
            count, in_hnsw = cur.fetchone()
            if in_hnsw or count > selectors.EXACT_SCAN_MAX_CHUNKS:
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
