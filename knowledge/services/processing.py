"""A stored document's processing by the worker, and what follows it: the django-q2 task's
body (``document_process``, claimed with a conditional update), the recovery of documents whose
task was lost, re-processing on request, and deletion.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.exceptions import TimeoutException

from agent_project.lib.embeddings import EmbeddingError
from knowledge.ingestion.parsers import DocumentError, Section, parse_file
from knowledge.models import Document
from knowledge.services.chunks import (_drop_chunks, _setting, _store_chunks, chunk_drafts, entry_sections,
                                       prepare_chunks)

logger = logging.getLogger(__name__)

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


def _send_processing(document_id: int) -> bool:
    """Queue the document's processing task; False when the broker cannot be reached (the
    document stays ``pending``, and ``documents_recover`` queues it again later)."""
    from django_q.tasks import async_task

    try:
        async_task("knowledge.tasks.document_process_task", document_id, task_name=f"kb-document-{document_id}",
                   cluster=settings.Q_QUEUES["ingest"])  # its own queue: slow files never delay a follow-up
    except Exception as exc:  # noqa: BLE001 - a broker error of any kind: the upload itself is stored
        logger.warning("could not queue document %s (%s); it will be queued again later", document_id, exc)
        return False
    return True


def _enqueue_processing(document: Document) -> None:
    """Queue the document's processing once the transaction commits."""
    document_id = document.pk
    transaction.on_commit(lambda: _send_processing(document_id))


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
