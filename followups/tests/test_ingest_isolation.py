"""Slow ingestion cannot hold a due follow-up (settings.Q_QUEUES): uploads go to the ``ingest`` queue, follow-ups
to ``realtime``, each with a cluster of its own under ``manage.py run_worker``.

Before, one cluster served both: four slow PDFs held every worker process and another tenant's due follow-up
went out 74 s late. Here the uploads' embedding calls (Gemini, faked at its HTTP seam) are held until the test
lets them go, with as many uploads as the worker has processes: the follow-up must reach its receiver while every
upload is still being processed."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_scopes import scopes_disabled

from agent_project.testing.fakehttp import FakeHTTPServer, Response
from agent_project.testing.procs import ROOT, production_env, stop_group, wait_until
from followups.models import FollowUp
from followups.tests.support import database_env, enqueue
from knowledge.models import Document

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TEXT = "\n\n".join(f"Paragraf {i}: ongkos kirim ke kota nomor {i} adalah {i * 1000} rupiah." for i in range(60))


class HeldEmbeddings:
    """batchEmbedContents that answers only once released (like a Gemini that takes minutes per file)."""

    def __init__(self):
        self.release = threading.Event()
        self.waiting = 0
        self.lock = threading.Lock()
        self.server = FakeHTTPServer(self.answer).start()

    def answer(self, request) -> Response:
        with self.lock:
            self.waiting += 1
        self.release.wait(120)
        with self.lock:
            self.waiting -= 1
        rows = [{"values": np.ones(r.get("outputDimensionality", 384)).tolist()} for r in request.body["requests"]]
        return Response(body={"embeddings": rows})


def test_a_due_followup_goes_out_while_slow_uploads_hold_every_ingest_worker(
        client_a, tenant_a, receiver, hooked, make_contact, make_followup, settings, tmp_path):
    settings.KB_SYNC_MAX_CHUNKS = 1  # queued, not processed in the request
    settings.MEDIA_ROOT = str(tmp_path / "media")
    tenant = hooked(tenant_a, receiver)
    held = HeldEmbeddings()
    workers = 2
    log_path = tmp_path / "run_worker.log"
    env = production_env(**database_env(), Q_CLUSTER_NAME=settings.Q_CLUSTER["name"], Q_WORKERS=str(workers),
                         Q_INGEST_WORKERS=str(workers), MEDIA_ROOT=settings.MEDIA_ROOT, EMBEDDING_PROVIDER="gemini",
                         GEMINI_API_KEY="test-key", GEMINI_BASE_URL=held.server.url, KB_CHUNK_WORDS="40",
                         CONN_MAX_AGE="0", OUTBOUND_ALLOWED_PRIVATE_HOSTS=f"127.0.0.1:{receiver.server.port}")
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "manage.py", "run_worker", "--metrics-port", "0"], cwd=ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for i in range(workers):
            upload = SimpleUploadedFile(f"ongkir-{i}.txt", f"Daftar {i}\n\n{TEXT}".encode())
            response = client_a.post("/kb/upload", {"file": upload}, format="multipart")
            assert response.status_code == 202, response.content
        wait_until(lambda: held.waiting >= workers, timeout=180, procs=[worker],
                   what=f"{workers} uploads to be embedding at once (every ingest worker busy)")

        followup = make_followup(tenant, make_contact(tenant))
        enqueue("followups.tasks.dispatch_drain")  # what the minute's tick sends to the realtime queue
        wait_until(lambda: receiver.deliveries, timeout=90, procs=[worker],
                   what="the due follow-up to go out while the uploads are held")
        with scopes_disabled():
            assert FollowUp.objects.get(pk=followup.pk).status == "sent"
            assert set(Document.objects.values_list("status", flat=True)) == {"processing"}
        assert held.waiting >= workers  # still held: nothing finished before the follow-up went out

        held.release.set()
        with scopes_disabled():
            wait_until(lambda: set(Document.objects.values_list("status", flat=True)) == {"ready"}, timeout=180,
                       procs=[worker], what="the uploads to finish once embedded")
    finally:
        held.release.set()
        stop_group(worker)
        held.server.stop()
        connection.close()
