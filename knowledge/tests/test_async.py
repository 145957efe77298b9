"""Large uploads: 202, then a django-q2 task moves the document pending →
processing → ready (or failed, with a readable error)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from knowledge.models import Chunk, Document
from knowledge.services.processing import document_process
from knowledge.tasks import document_process_task

ROOT = Path(__file__).resolve().parents[2]
TEXT = "\n\n".join(f"Paragraf {i}: pengiriman ke kota nomor {i} memakan waktu {i % 5 + 1} hari." for i in range(40))


def upload(client, name, data):
    return client.post("/kb/upload", {"file": SimpleUploadedFile(name, data)}, format="multipart")


@pytest.fixture
def async_uploads(settings):
    settings.KB_SYNC_MAX_CHUNKS = 1  # anything with two chunks or more is queued


@pytest.mark.django_db
def test_large_upload_is_queued_then_processed_by_the_task(client_a, tenant_a, scoped, async_uploads,
                                                           django_capture_on_commit_callbacks, settings):
    settings.KB_CHUNK_WORDS = 40
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload(client_a, "kota.txt", TEXT.encode())
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["outcome"] == "queued" and body["status"] == "pending" and body["chunk_count"] == 0
    assert len(callbacks) == 1  # enqueued only once the row was committed
    if not django_settings.Q_CLUSTER.get("redis"):
        assert OrmQ.objects.count() == 1
    assert client_a.get(f"/kb/documents/{body['id']}").json()["status"] == "pending"

    assert document_process_task(body["id"]) == "ready"
    detail = client_a.get(f"/kb/documents/{body['id']}").json()
    assert detail["status"] == "ready" and detail["chunk_count"] > 1 and detail["error"] == ""
    assert client_a.post("/kb/search", {"query": "kota nomor 17"}, format="json").json()["hits"][0]["document_id"] \
        == body["id"]
    # A second run (a retried task) finds nothing pending and changes nothing.
    with scoped(tenant_a):
        before = list(Chunk.objects.values_list("id", flat=True))
        assert document_process(document_id=body["id"]).status == "ready"
        assert list(Chunk.objects.values_list("id", flat=True)) == before


@pytest.mark.django_db
def test_queued_file_that_cannot_be_parsed_ends_failed_with_a_reason(client_a, settings,
                                                                    django_capture_on_commit_callbacks):
    import io

    from pypdf import PdfWriter

    settings.KB_SYNC_MAX_BYTES = 10  # not parsed in the request, only checked (header, encryption, pages)
    writer, scan = PdfWriter(), io.BytesIO()
    writer.add_blank_page(width=595, height=842)  # a scanned page: no text layer
    writer.write(scan)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client_a, "scan.pdf", scan.getvalue())
    assert response.status_code == 202
    assert document_process_task(response.json()["id"]) == "failed"
    detail = client_a.get(f"/kb/documents/{response.json()['id']}").json()
    assert detail["status"] == "failed" and "No text could be extracted" in detail["error"]
    assert detail["chunk_count"] == 0


@pytest.mark.django_db
def test_a_document_another_worker_claimed_is_left_alone(client_a, tenant_a, scoped, async_uploads, settings,
                                                        django_capture_on_commit_callbacks):
    settings.KB_CHUNK_WORDS = 40
    with django_capture_on_commit_callbacks(execute=True):
        doc_id = upload(client_a, "kota.txt", TEXT.encode()).json()["id"]
    with scoped(tenant_a):
        Document.objects.filter(pk=doc_id).update(status=Document.Status.PROCESSING)  # another worker has it
        assert document_process(document_id=doc_id).status == "processing"
        assert not Chunk.objects.filter(document_id=doc_id).exists()
        # ...until its claim is older than the task timeout: that worker died, a retry takes over.
        Document.objects.filter(pk=doc_id).update(updated_at=timezone.now() - timedelta(hours=1))
        assert document_process(document_id=doc_id).status == "ready"


@pytest.mark.django_db
def test_a_run_past_the_task_timeout_ends_failed_and_the_file_can_be_uploaded_again(
        client_a, tenant_a, scoped, async_uploads, settings, monkeypatch, django_capture_on_commit_callbacks):
    """django-q2 stops a task past Q_TIMEOUT by raising TimeoutException, a SystemExit: ``except
    Exception`` missed it, the document stayed ``processing`` for good and a new upload of the file
    answered ``duplicate`` of it."""
    from django_q.exceptions import TimeoutException

    from knowledge.services import processing

    settings.KB_CHUNK_WORDS = 40
    with django_capture_on_commit_callbacks(execute=True):
        doc_id = upload(client_a, "kota.txt", TEXT.encode()).json()["id"]

    def too_slow(drafts, analyse=True):
        raise TimeoutException("Task exceeded maximum timeout value (600 seconds)")

    monkeypatch.setattr(processing, "prepare_chunks", too_slow)
    with pytest.raises(TimeoutException):  # django-q2 still sees the task stop
        document_process_task(doc_id)
    detail = client_a.get(f"/kb/documents/{doc_id}").json()
    assert detail["status"] == "failed" and "time limit" in detail["error"] and "Q_TIMEOUT" in detail["error"]
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        again = upload(client_a, "kota.txt", TEXT.encode())
    assert again.status_code == 202 and again.json()["id"] != doc_id


@pytest.mark.django_db
def test_documents_whose_task_was_lost_are_queued_again_then_given_up(client_a, tenant_a, tenant_b, scoped,
                                                                      async_uploads, settings, monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    """With the Redis broker a killed worker's task is gone, and a broker down at upload time left
    the document pending with nothing queued: both sat there for good."""
    from knowledge.services import processing

    settings.KB_CHUNK_WORDS = 40
    sent = []
    monkeypatch.setattr(processing, "_send_processing", lambda document_id: sent.append(document_id) or True)
    with django_capture_on_commit_callbacks(execute=True):
        lost = upload(client_a, "kota.txt", TEXT.encode()).json()["id"]  # processing, its worker killed
        waiting = upload(client_a, "lain.txt", TEXT.encode() + b"\n\nLain.").json()["id"]  # never queued
        fresh = upload(client_a, "baru.txt", TEXT.encode() + b"\n\nBaru.").json()["id"]
    sent.clear()
    now = timezone.now()
    long_ago = now - timedelta(seconds=settings.Q_CLUSTER["timeout"] + 120)
    with scoped(tenant_a):
        Document.objects.filter(pk=lost).update(status="processing", attempts=1, updated_at=long_ago)
        waited = timedelta(seconds=settings.KB_PENDING_REQUEUE_SECONDS + 1)
        Document.objects.filter(pk=waiting).update(updated_at=now - waited)
    assert processing.documents_recover(now=now) == {"requeued": 2, "failed": 0, "skipped": 0}
    assert sorted(sent) == sorted([lost, waiting])
    with scoped(tenant_a):
        assert Document.objects.get(pk=lost).status == "pending" and Document.objects.get(pk=fresh).status == "pending"
    assert processing.documents_recover(now=now) == {"requeued": 0, "failed": 0, "skipped": 0}  # not again at once
    assert document_process_task(lost) == "ready"  # the re-queued task does the work
    # A document whose every run was stopped is given up, with a reason.
    with scoped(tenant_a):
        Document.objects.filter(pk=waiting).update(status="processing", attempts=settings.KB_PROCESS_MAX_ATTEMPTS,
                                                   updated_at=long_ago)
    assert processing.documents_recover(now=now)["failed"] == 1
    detail = client_a.get(f"/kb/documents/{waiting}").json()
    assert detail["status"] == "failed" and "stopped 3 times" in detail["error"]
    assert document_process_task(waiting) == "failed"  # a late retry does not run it a fourth time


@pytest.mark.django_db
def test_an_upload_while_the_broker_is_down_is_stored_and_queued_later(client_a, tenant_a, scoped, async_uploads,
                                                                       settings, monkeypatch,
                                                                       django_capture_on_commit_callbacks):
    """async_task raised in the on-commit hook: a 500 for a document already stored as pending, and
    the client's retry got ``duplicate`` of a document nobody would process."""
    import django_q.tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    settings.KB_CHUNK_WORDS = 40
    monkeypatch.setattr(django_q.tasks, "async_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client_a, "kota.txt", TEXT.encode())
    assert response.status_code == 202 and response.json()["status"] == "pending"


@pytest.mark.django_db
def test_a_failed_reprocess_keeps_the_chunks_it_had_and_says_why(client_a, tenant_a, scoped, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    """The document ended ``failed`` with its old chunks still searchable, and uploading the file
    again (a failed document is no duplicate) stored every passage twice."""
    from knowledge.services import processing

    with django_capture_on_commit_callbacks(execute=True):
        body = upload(client_a, "faq.md", b"# Jam buka\nToko buka jam 9 pagi.").json()
    with scoped(tenant_a):
        document = Document.objects.get(pk=body["id"])
        document.source_file.storage.delete(document.source_file.name)  # the stored file is gone
        processing.document_reprocess(document=document)
    assert document_process_task(body["id"]) == "ready"
    detail = client_a.get(f"/kb/documents/{body['id']}").json()
    assert detail["chunk_count"] == 1 and detail["error"].startswith("Re-processing failed")
    assert "no longer stored" in detail["error"] and "/" not in detail["error"]  # not the server's media path
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(client_a, "faq.md", b"# Jam buka\nToko buka jam 9 pagi.").json()["outcome"] == "duplicate"


def test_task_for_a_deleted_document_does_nothing(db):
    assert document_process_task(987654321) is None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_processes_the_upload(client_a, async_uploads, settings, tmp_path):
    settings.KB_CHUNK_WORDS = 40
    env = {
        **os.environ,
        "EMBEDDED_PG_DIR": str(django_settings.EMBEDDED_PG_DIR),
        "EMBEDDED_PG_DATABASE": connection.settings_dict["NAME"],
        "Q_CLUSTER_NAME": django_settings.Q_CLUSTER["name"],
        "WORKER_QUEUE": "ingest",  # uploads have a queue of their own
        "EMBEDDING_PROVIDER": "fake",
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "KB_CHUNK_WORDS": "40",
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PYTEST_VERSION", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    response = upload(client_a, "kota.txt", TEXT.encode())
    assert response.status_code == 202
    doc_id = response.json()["id"]
    with open(tmp_path / "qcluster.log", "wb") as log:
        cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        statuses = []
        deadline = time.monotonic() + 120  # a wait limit, not a timing assertion
        while time.monotonic() < deadline:
            status = client_a.get(f"/kb/documents/{doc_id}").json()["status"]
            if not statuses or statuses[-1] != status:
                statuses.append(status)
            if status in ("ready", "failed"):
                break
            time.sleep(0.2)
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
    assert statuses[-1] == "ready", (statuses, (tmp_path / "qcluster.log").read_text()[-3000:])
    assert statuses[0] == "pending"
    assert client_a.get(f"/kb/documents/{doc_id}").json()["chunk_count"] > 1
