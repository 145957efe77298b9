"""Documents that arrive as files: an upload (API or admin), processed in the request when
small and queued for the worker otherwise, and ``kb_import``'s bulk import, which embeds the
next file on a worker thread while one is written.

Ingestion reads top to bottom: parse (``ingestion.parsers``) → chunk (``ingestion.chunking``)
→ embed in batches → analyse for BM25 → one transaction that swaps the document's chunks
(``chunks._write_chunks``). A file that cannot be ingested stores nothing, and a file saved
by a transaction that fails is deleted again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath

from django.core.files.base import ContentFile
from django.db import connection, transaction

from agent_project.errors import ApiError
from agent_project.lib.embeddings import EmbeddingError, get_embedder
from knowledge.ingestion.parsers import DocumentError, ParseTimeout, file_type_of, parse_file, preflight
from knowledge.models import Document
from knowledge.services.chunks import (PreparedChunks, _check_dimensions, _lock_keys, _prepare_or_503, _save_ready,
                                       _setting, analyse_chunks, checksum_of, chunk_drafts, prepare_chunks)
from knowledge.services.processing import _enqueue_processing

logger = logging.getLogger(__name__)

LIVE_STATUSES = (Document.Status.PENDING, Document.Status.PROCESSING, Document.Status.READY)
IMPORT_ID_PREFIX = "import:"  # kb_import's external_id: the prefix and the file's path


def api_error(exc: DocumentError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, exc.details)


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


@dataclass
class UploadResult:
    document: Document
    outcome: str  # created | duplicate | queued


def upload_limit() -> int:
    """The largest file accepted, in bytes (``MAX_UPLOAD_BYTES``)."""
    return _setting("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)


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
        max_bytes = upload_limit()
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
