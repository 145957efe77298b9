"""The knowledge routes end to end: real files through the API into PostgreSQL."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conftest import assert_error
from knowledge.models import Chunk, CorpusStats, Document, Term

from agent_project.testing.needs import corpus_files

from .conftest import CORPUS

pytestmark = pytest.mark.django_db

PDFS = corpus_files("pdf/*.pdf")


def upload(client, name, data, **extra):
    return client.post("/kb/upload", {"file": SimpleUploadedFile(name, data), **extra}, format="multipart")


@pytest.mark.parametrize("path", PDFS)
def test_every_corpus_pdf_through_the_api(client_a, tenant_a, scoped, path):
    response = upload(client_a, path.name, path.read_bytes())
    if path.name == "libreoffice-writer-password.pdf":
        error = assert_error(response, 422, "pdf_encrypted")
        assert "password" in error["message"].lower()
        with scoped(tenant_a):
            assert not Document.objects.exists() and not Chunk.objects.exists()
        return
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] == "created" and body["status"] == "ready" and body["chunk_count"] >= 1
    assert body["file_type"] == "pdf" and body["original_name"] == path.name
    detail = client_a.get(f"/kb/documents/{body['id']}").json()
    assert len(detail["chunks"]) == body["chunk_count"]
    assert all(c["provenance"].get("page", 0) >= 1 for c in detail["chunks"])


def test_upload_then_search_with_provenance(client_a):
    body = upload(client_a, "harga.csv", b"Produk,Harga\nKopi Gayo,85000\nTeh Melati,30000\n",
                  title="Daftar harga", tags="harga, produk").json()
    assert body["title"] == "Daftar harga" and body["tags"] == ["harga", "produk"]
    hits = client_a.post("/kb/search", {"query": "harga kopi gayo", "k": 3}, format="json").json()["hits"]
    assert hits[0]["document_id"] == body["id"] and hits[0]["title"] == "Daftar harga"
    assert "Produk: Kopi Gayo; Harga: 85000" in hits[0]["text"]
    assert hits[0]["provenance"] == {"rows": [2, 3]}
    assert set(hits[0]["scores"]) >= {"keyword", "vector", "bm25"} and hits[0]["relevant"] is True


def test_upload_tags_are_validated_as_upsert_validates_them(client_a, tenant_a, scoped):
    """The column holds 64 characters a tag: a longer one was cut by the database while the
    answer echoed it whole, and any number of tags was stored."""
    error = assert_error(upload(client_a, "a.txt", b"Halo", tags="ok, " + "x" * 65), 400, "validation_error")
    assert "64 characters" in error["message"]
    error = assert_error(upload(client_a, "a.txt", b"Halo", tags=",".join(f"t{i}" for i in range(51))), 400,
                         "validation_error")
    assert "At most 50 tags" in error["message"]
    with scoped(tenant_a):
        assert not Document.objects.exists()
    body = upload(client_a, "a.txt", b"Halo", tags="promo, promo, " + "y" * 64).json()
    assert body["tags"] == ["promo", "y" * 64]


def test_reupload_of_identical_content_is_detected(client_a, tenant_a, scoped):
    data = b"# FAQ\nToko buka jam 9 pagi."
    first = upload(client_a, "faq.md", data)
    second = upload(client_a, "faq-copy.md", data)
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["outcome"] == "duplicate" and second.json()["id"] == first.json()["id"]
    with scoped(tenant_a):
        assert Document.objects.count() == 1 and Chunk.objects.count() == first.json()["chunk_count"]


@pytest.mark.parametrize("name,data,status,code", [
    ("malware.exe", b"MZ", 415, "unsupported_file_type"),
    ("broken.pdf", b"%PDF-1.7 not really", 422, "file_unreadable"),
    ("empty.txt", b"", 422, "empty_document"),
])
def test_bad_uploads_store_nothing(client_a, tenant_a, scoped, name, data, status, code):
    error = assert_error(upload(client_a, name, data), status, code)
    if status == 415:
        assert "pdf" in error["details"]["supported"]
    with scoped(tenant_a):
        assert not Document.objects.exists()


def test_upload_too_large(client_a, settings):
    settings.MAX_UPLOAD_BYTES = 100
    # Just over the limit (the view's check) and far over it (refused from Content-Length): one answer.
    for size in (200, 200_000):
        assert assert_error(upload(client_a, "big.txt", b"x" * size), 413, "file_too_large")["details"]["limit"] == 100


def test_upload_needs_a_file(client_a):
    assert_error(client_a.post("/kb/upload", {"title": "x"}, format="multipart"), 400, "validation_error")


def test_upsert_single_entry_is_idempotent_and_updates_in_place(client_a, tenant_a, scoped, embedder):
    entry = {"title": "Ongkir", "content": "Gratis ongkir untuk pembelian di atas 200 ribu.", "external_id": "faq-1",
             "tags": ["ongkir"]}
    first = client_a.post("/kb/upsert", entry, format="json")
    assert first.status_code == 201 and first.json()["action"] == "created"
    calls = len(embedder.calls)
    second = client_a.post("/kb/upsert", {**entry, "tags": ["ongkir", "promo"]}, format="json")
    assert second.status_code == 200 and second.json()["action"] == "unchanged"
    assert second.json()["id"] == first.json()["id"] and second.json()["tags"] == ["ongkir", "promo"]
    assert len(embedder.calls) == calls  # nothing re-embedded
    third = client_a.post("/kb/upsert", {**entry, "content": "Ongkir gratis di atas 300 ribu."}, format="json")
    assert third.json()["action"] == "updated" and third.json()["id"] == first.json()["id"]
    with scoped(tenant_a):
        texts = list(Chunk.objects.values_list("text", flat=True))
        assert texts == ["Ongkir\nOngkir gratis di atas 300 ribu."]
        # Term statistics follow the swap: "200" is gone, "300" is in.
        assert not Term.objects.filter(term="200").exists() and Term.objects.get(term="300").df == 1
        assert CorpusStats.objects.get().chunk_count == 1


def test_moving_text_between_title_and_content_is_a_change(client_a, tenant_a, scoped):
    """The checksum hashes "title\n\ncontent": with a line break allowed in the title, both splits
    hashed alike, and the second answered "unchanged" over chunks of the first. A title is one line."""
    first = client_a.post("/kb/upsert", {"title": "Promo\n\nDiskon 50%", "content": "Berlaku sampai Minggu.",
                                         "external_id": "promo"}, format="json").json()
    assert first["title"] == "Promo Diskon 50%"
    second = client_a.post("/kb/upsert", {"title": "Promo", "content": "Diskon 50%\n\nBerlaku sampai Minggu.",
                                          "external_id": "promo"}, format="json").json()
    assert second["action"] == "updated" and second["title"] == "Promo"
    with scoped(tenant_a):
        assert list(Chunk.objects.values_list("text", flat=True)) == ["Promo\nDiskon 50%\nBerlaku sampai Minggu."]


def test_an_entry_cannot_take_over_an_imported_or_uploaded_document(client_a, tenant_a, scoped):
    """kb_import keys its files "import:<path>": an upsert of that id replaced the file's text with
    the entry's, and the next re-process or import brought the file back."""
    from knowledge.services import document_import

    with scoped(tenant_a):
        imported = document_import(tenant=tenant_a, name="/data/faq.md", data=b"# FAQ\nToko buka jam 9.").document
        imported.refresh_from_db()
    taken = {"title": "Lain", "content": "Isi lain", "external_id": "import:/data/faq.md"}
    assert "kb_import" in assert_error(client_a.post("/kb/upsert", taken, format="json"), 400,
                                       "validation_error")["message"]
    assert_error(client_a.post("/kb/upsert", {**taken, "external_id": "import:/data/new.md"}, format="json"), 400,
                 "validation_error")
    with scoped(tenant_a):
        Document.objects.filter(pk=imported.pk).update(external_id="sku-1")  # any non-entry document's id
    error = assert_error(client_a.post("/kb/upsert", {"entries": [{"title": "A", "content": "B"},
                                                                 {**taken, "external_id": "sku-1"}]}, format="json"),
                         409, "external_id_conflict")
    assert error["details"] == {"external_id": "sku-1", "document_id": imported.pk, "source_kind": "import"}
    with scoped(tenant_a):
        assert Document.objects.count() == 1 and Document.objects.get().checksum == imported.checksum


def test_upsert_many_entries_all_or_nothing(client_a, tenant_a, scoped):
    entries = [{"title": f"T{i}", "content": f"Isi nomor {i}", "external_id": f"e{i}"} for i in range(3)]
    response = client_a.post("/kb/upsert", {"entries": entries}, format="json")
    assert response.status_code == 201
    assert [r["action"] for r in response.json()["results"]] == ["created"] * 3
    bad = [*entries, {"title": "no content"}]
    assert_error(client_a.post("/kb/upsert", {"entries": bad}, format="json"), 400, "validation_error")
    dup = [entries[0], {**entries[0], "content": "other"}]
    assert_error(client_a.post("/kb/upsert", {"entries": dup}, format="json"), 400, "validation_error")
    with scoped(tenant_a):
        assert Document.objects.count() == 3


def test_upsert_without_external_id_does_not_duplicate_identical_entries(client_a):
    entry = {"title": "Jam buka", "content": "Buka jam 9."}
    first = client_a.post("/kb/upsert", entry, format="json").json()
    second = client_a.post("/kb/upsert", entry, format="json").json()
    assert second["action"] == "unchanged" and second["id"] == first["id"]


def test_upsert_of_many_entries_embeds_them_together_and_applies_them_in_order(client_a, tenant_a, scoped,
                                                                               embedder):
    from knowledge.services.stats import stats_check

    first = client_a.post("/kb/upsert", {"entries": [
        {"title": "Ongkir", "content": "Gratis ongkir di atas 200 ribu.", "external_id": "ongkir"},
        {"title": "Retur", "content": "Retur dalam 7 hari.", "external_id": "retur"},
    ]}, format="json").json()["results"]
    calls = len(embedder.calls)
    entries = [
        {"title": "Ongkir", "content": "Gratis ongkir di atas 300 ribu.", "external_id": "ongkir"},  # changed
        {"title": "Retur", "content": "Retur dalam 7 hari.", "external_id": "retur", "tags": ["retur"]},  # same
        {"title": "Jam buka", "content": "Buka jam 9 sampai 21."},  # new, no external_id
        {"title": "Jam buka", "content": "Buka jam 9 sampai 21."},  # the same content again: found, not doubled
        {"title": "Ongkir", "content": "Gratis ongkir di atas 300 ribu."},  # what the first entry just stored
        {"title": "Garansi", "content": "Garansi resmi 12 bulan.", "external_id": "garansi"},
    ]
    results = client_a.post("/kb/upsert", {"entries": entries}, format="json").json()["results"]
    assert [r["action"] for r in results] == ["updated", "unchanged", "created", "unchanged", "unchanged", "created"]
    assert results[0]["id"] == first[0]["id"] and results[1]["id"] == first[1]["id"]
    assert results[3]["id"] == results[2]["id"] and results[4]["id"] == first[0]["id"]
    assert results[1]["tags"] == ["retur"]
    # The changed and new entries' chunks in one call to the model; the fourth and fifth repeat earlier ones.
    assert embedder.calls[calls:] == [("document", 3)]
    with scoped(tenant_a):
        assert Document.objects.count() == 4
        texts = sorted(Chunk.objects.values_list("text", flat=True))
        assert texts == ["Garansi\nGaransi resmi 12 bulan.", "Jam buka\nBuka jam 9 sampai 21.",
                         "Ongkir\nGratis ongkir di atas 300 ribu.", "Retur\nRetur dalam 7 hari."]
        assert all(d.status == "ready" and d.chunk_count == 1 for d in Document.objects.all())
        assert stats_check(tenant=tenant_a).ok and not Term.objects.filter(term="200").exists()


def test_upsert_requires_an_existing_tenant(global_client):
    response = global_client.post("/kb/upsert", {"title": "a", "content": "b"}, format="json",
                                  HTTP_X_TENANT_ID="no-such-tenant")
    assert_error(response, 404, "tenant_not_found")


def test_documents_list_detail_delete(client_a, tenant_a, scoped):
    doc = client_a.post("/kb/upsert", {"title": "Garansi", "content": "Garansi 1 tahun."}, format="json").json()
    listing = client_a.get("/kb/documents/").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == doc["id"]
    assert client_a.get("/kb/documents?status=failed").json()["count"] == 0
    detail = client_a.get(f"/kb/documents/{doc['id']}/").json()
    assert detail["status"] == "ready" and detail["chunks"][0]["text"] == "Garansi\nGaransi 1 tahun."
    assert client_a.delete(f"/kb/documents/{doc['id']}").status_code == 204
    assert_error(client_a.get(f"/kb/documents/{doc['id']}"), 404, "document_not_found")
    with scoped(tenant_a):
        assert not Chunk.objects.exists() and not Term.objects.exists()
        assert CorpusStats.objects.get().chunk_count == 0
    assert client_a.post("/kb/search", {"query": "garansi"}, format="json").json()["hits"] == []


def test_a_long_documents_chunks_come_in_pages(client_a, settings):
    settings.KB_CHUNK_WORDS, settings.KB_CHUNK_OVERLAP_WORDS = 20, 0
    content = "\n\n".join(f"Paragraf {i}: " + " ".join(f"kata{i}x{j}" for j in range(18)) for i in range(7))
    doc = client_a.post("/kb/upsert", {"title": "Panjang", "content": content}, format="json").json()
    total = doc["chunk_count"]
    assert total >= 7
    whole = client_a.get(f"/kb/documents/{doc['id']}").json()
    assert len(whole["chunks"]) == total and whole["chunks_offset"] == 0 and whole["chunks_next_offset"] is None
    seen, offset = [], 0
    while offset is not None:
        page = client_a.get(f"/kb/documents/{doc['id']}?chunks_limit=3&chunks_offset={offset}").json()
        assert page["chunks_offset"] == offset and len(page["chunks"]) <= 3
        seen += [c["position"] for c in page["chunks"]]
        offset = page["chunks_next_offset"]
    assert seen == list(range(total))
    for bad in ("chunks_limit=0", "chunks_limit=501", "chunks_offset=-1", "chunks_offset=x",
                "chunks_offset=9223372036854775808"):  # past bigint: the database refused it, a 500
        assert_error(client_a.get(f"/kb/documents/{doc['id']}?{bad}"), 400, "invalid_filter")


def test_search_validation(client_a):
    assert_error(client_a.post("/kb/search", {"k": 3}, format="json"), 400, "validation_error")
    assert_error(client_a.post("/kb/search", {"query": "a", "k": 500}, format="json"), 400, "validation_error")


def _a_document(client_a):
    return client_a.post("/kb/upsert", {"title": "Rahasia A", "content": "Kode promo A: ALPHA-1."},
                         format="json").json()["id"]


@pytest.mark.parametrize("method,path", [
    ("get", "/kb/documents/{id}"),
    ("delete", "/kb/documents/{id}"),
])
def test_cross_tenant_objects_are_404(client_a, client_b, tenant_a, scoped, method, path):
    doc_id = _a_document(client_a)
    assert_error(getattr(client_b, method)(path.format(id=doc_id)), 404, "document_not_found")
    with scoped(tenant_a):
        assert Document.objects.filter(pk=doc_id).exists()


def test_cross_tenant_list_and_search_see_nothing(client_a, client_b):
    _a_document(client_a)
    assert client_b.get("/kb/documents").json()["count"] == 0
    assert client_b.post("/kb/search", {"query": "ALPHA-1 kode promo"}, format="json").json()["hits"] == []


@pytest.mark.parametrize("method,path,body", [
    ("post", "/kb/upsert", {"title": "x", "content": "y"}),
    ("post", "/kb/search", {"query": "x"}),
    ("get", "/kb/documents", None),
    ("get", "/kb/documents/1", None),
    ("delete", "/kb/documents/1", None),
])
def test_naming_another_tenant_is_403(client_b, tenant_a, method, path, body):
    kwargs = {"format": "json", "HTTP_X_TENANT_ID": tenant_a.id}
    response = getattr(client_b, method)(path, body, **kwargs) if body else getattr(client_b, method)(path, **kwargs)
    assert_error(response, 403, "tenant_mismatch")


def test_upload_naming_another_tenant_is_403(client_b, tenant_a):
    response = client_b.post("/kb/upload", {"file": SimpleUploadedFile("a.txt", b"hi"), "tenant_id": tenant_a.id},
                             format="multipart")
    assert_error(response, 403, "tenant_mismatch")


def test_anonymous_is_refused(anon_client):
    assert anon_client.post("/kb/search", {"query": "x"}, format="json").status_code in (401, 403)


def test_global_key_acts_for_the_named_tenant(global_client, tenant_a, client_a):
    response = global_client.post("/kb/upsert", {"title": "G", "content": "dari kunci global"}, format="json",
                                  HTTP_X_TENANT_ID=tenant_a.id)
    assert response.status_code == 201
    assert client_a.get("/kb/documents").json()["count"] == 1


def test_xlsx_upload_row_provenance(client_a):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "FAQ"
    sheet.append(["Pertanyaan", "Jawaban"])
    sheet.append(["Bisa COD?", "Bisa, khusus Jabodetabek."])
    buffer = io.BytesIO()
    workbook.save(buffer)
    doc = upload(client_a, "faq.xlsx", buffer.getvalue()).json()
    chunk = client_a.get(f"/kb/documents/{doc['id']}").json()["chunks"][0]
    assert chunk["provenance"] == {"sheet": "FAQ", "rows": [2, 2]}
    assert chunk["text"] == "Sheet: FAQ\nPertanyaan: Bisa COD?; Jawaban: Bisa, khusus Jabodetabek."


def test_schema_lists_the_routes(client_a):
    schema = client_a.get("/api/schema?format=json").content.decode()
    for path in ("/kb/upsert", "/kb/upload", "/kb/search", "/kb/documents/{id}"):
        assert path in schema


def _at_once(n: int, work, monkeypatch):
    """Run ``work(i)`` on ``n`` threads whose embeddings all finish together: every one has
    looked for an existing document before any of them writes (the race the locks close)."""
    import threading

    from django.db import connection

    from knowledge.services import entries, files

    barrier = threading.Barrier(n, timeout=30)
    prepare = files._prepare_or_503

    def racing(drafts):
        prepared = prepare(drafts)
        barrier.wait()
        return prepared

    for flow in (entries, files):  # both embed before their transaction opens
        monkeypatch.setattr(flow, "_prepare_or_503", racing)
    results, errors = [None] * n, []

    def run(i):
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_updates_of_different_entries_do_not_deadlock(tenant_a, scoped, monkeypatch):
    """Each update removes its old terms and adds the other's: locking term rows as they came
    (then the statistics row) deadlocked about every other round; writers now queue on the
    tenant's statistics row first."""
    from knowledge.services import entries_upsert
    from knowledge.services.stats import stats_check

    with scoped(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[{"title": "Satu", "content": "alpha gamma", "external_id": "doc-1"},
                                                 {"title": "Dua", "content": "beta delta", "external_id": "doc-2"}])
    for round_no in range(6):
        contents = ("beta delta", "alpha gamma") if round_no % 2 == 0 else ("alpha gamma", "beta delta")

        def update(i, contents=contents):
            with scoped(tenant_a):
                entry = {"title": ("Satu", "Dua")[i], "content": contents[i], "external_id": f"doc-{i + 1}"}
                return entries_upsert(tenant=tenant_a, entries=[entry])[0]["action"]

        assert _at_once(2, update, monkeypatch) == ["updated", "updated"]
        monkeypatch.undo()
    with scoped(tenant_a):
        assert stats_check(tenant=tenant_a).ok


@pytest.mark.django_db(transaction=True)
def test_a_delete_while_another_entry_is_rewritten_does_not_deadlock(tenant_a, scoped, monkeypatch):
    import threading
    import time

    from django.db import connection

    from knowledge.services import chunks, entries_upsert
    from knowledge.services.processing import document_delete
    from knowledge.services.stats import stats_check

    with scoped(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[
            {"title": "Satu", "content": "alpha", "external_id": "doc-1"},
            {"title": "Dua", "content": "beta", "external_id": "doc-2"}])
        doomed = Document.objects.get(external_id="doc-1")
    writing = threading.Event()
    copy = chunks.copy_chunks

    def slow_copy(rows, **kwargs):  # a COPY into a big HNSW graph takes this long anyway
        writing.set()
        time.sleep(0.3)
        return copy(rows, **kwargs)

    monkeypatch.setattr(chunks, "copy_chunks", slow_copy)
    errors = []

    def run(work):
        try:
            with scoped(tenant_a):
                work()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def delete():
        writing.wait(10)
        document_delete(document=doomed)

    threads = [threading.Thread(target=run, args=(work,)) for work in (
        lambda: entries_upsert(tenant=tenant_a, entries=[
            {"title": "Dua", "content": "alpha", "external_id": "doc-2"}]), delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with scoped(tenant_a):
        assert list(Document.objects.values_list("external_id", flat=True)) == ["doc-2"]
        assert stats_check(tenant=tenant_a).ok
        document_delete(document=doomed)  # already gone: nothing to do, no error


@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_of_a_new_external_id_create_it_once(tenant_a, scoped, monkeypatch):
    from knowledge.services import entries_upsert

    def upsert(i):
        with scoped(tenant_a):
            entry = {"title": "Race", "content": "Promo akhir tahun diskon 10%." if i < 2 else f"Versi {i}.",
                     "external_id": "race-1"}
            return entries_upsert(tenant=tenant_a, entries=[entry])[0]["action"]

    actions = _at_once(4, upsert, monkeypatch)
    assert sorted(actions).count("created") == 1 and set(actions) <= {"created", "updated", "unchanged"}
    with scoped(tenant_a):
        document = Document.objects.get(external_id="race-1")
        assert Document.objects.count() == 1
        assert list(Chunk.objects.values_list("document_id", flat=True).distinct()) == [document.pk]
        assert CorpusStats.objects.get().chunk_count == Chunk.objects.count()


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_of_one_file_store_it_once(tenant_a, scoped, monkeypatch, settings):
    from pathlib import Path

    from knowledge.services import document_upload

    def send(i):
        with scoped(tenant_a):
            return document_upload(tenant=tenant_a, filename=f"retur-{i}.txt",
                                   data=b"Barang bisa diretur dalam 7 hari dengan nota.").outcome

    outcomes = _at_once(4, send, monkeypatch)
    assert sorted(outcomes) == ["created", "duplicate", "duplicate", "duplicate"]
    with scoped(tenant_a):
        assert Document.objects.count() == 1 and Chunk.objects.count() == 1
    assert len(list(Path(settings.MEDIA_ROOT).rglob("*.txt"))) == 1  # the losers left no file behind


def test_a_failed_store_leaves_no_file_behind(client_a, tenant_a, scoped, monkeypatch, settings):
    from pathlib import Path

    from knowledge.services import chunks, files

    def broken(tenant_id, stored):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(chunks, "_write_chunks", broken)
    with pytest.raises(RuntimeError), scoped(tenant_a):
        files.document_upload(tenant=tenant_a, filename="a.txt", data=b"Toko buka jam sembilan.")
    with pytest.raises(RuntimeError), scoped(tenant_a):
        files.document_import(tenant=tenant_a, name="/data/b.txt", data=b"Toko tutup jam sembilan.")
    with scoped(tenant_a):
        assert not Document.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


@pytest.mark.corpus
def test_a_big_upload_is_checked_before_it_is_queued(client_a, tenant_a, scoped, settings):
    """Files over KB_SYNC_MAX_BYTES are processed by a worker; the cheap checks still answer at once."""
    settings.KB_SYNC_MAX_BYTES = 1000
    locked = (CORPUS / "pdf" / "libreoffice-writer-password.pdf").read_bytes()
    assert len(locked) > 1000
    assert_error(upload(client_a, "locked.pdf", locked), 422, "pdf_encrypted")
    assert_error(upload(client_a, "tiga.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 500), 422, "file_unreadable")
    assert_error(upload(client_a, "foto.txt", bytes(range(256)) * 20), 422, "file_unreadable")
    assert_error(upload(client_a, "buku.xlsx", b"PK\x03\x04" + b"\x00" * 2000), 422, "file_unreadable")
    with scoped(tenant_a):
        assert not Document.objects.exists()
    readable = max((p for p in (CORPUS / "pdf").glob("*.pdf") if p.name != "libreoffice-writer-password.pdf"),
                   key=lambda p: p.stat().st_size)
    response = upload(client_a, readable.name, readable.read_bytes())
    assert response.status_code == 202 and response.json()["status"] == "pending"


def test_an_entry_changed_twice_in_one_call_keeps_the_last_content(tenant_a, scoped):
    """The API refuses a repeated external_id in one request; the service, called directly,
    applies the entries one after another."""
    from knowledge.services import entries_upsert
    from knowledge.services.stats import stats_check

    with scoped(tenant_a):
        results = entries_upsert(tenant=tenant_a, entries=[
            {"title": "Promo", "content": "Diskon 10% semua produk.", "external_id": "promo"},
            {"title": "Promo", "content": "Diskon 20% khusus sepatu.", "external_id": "promo"},
        ])
        assert [r["action"] for r in results] == ["created", "updated"]
        document = Document.objects.get()
        assert list(Chunk.objects.values_list("text", flat=True)) == ["Promo\nDiskon 20% khusus sepatu."]
        assert document.chunk_count == 1 and stats_check(tenant=tenant_a).ok


def test_new_entries_are_inserted_in_one_statement_with_their_fields(client_a, tenant_a, scoped):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    entries = [{"title": f"Produk {i}", "content": f"Produk nomor {i} tersedia.", "tags": ["katalog"],
                "metadata": {"sku": i}, "external_id": f"sku-{i}"} for i in range(30)]
    with CaptureQueriesContext(connection) as queries:
        response = client_a.post("/kb/upsert", {"entries": entries}, format="json")
    assert response.status_code == 201, response.content
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "knowledge_document"')]
    assert len(inserts) == 1
    with scoped(tenant_a):
        documents = list(Document.objects.order_by("pk"))
        assert [d.external_id for d in documents] == [f"sku-{i}" for i in range(30)]  # ids in the entries' order
        assert all(d.created_at and d.updated_at and d.status == "ready" and d.chunk_count == 1 for d in documents)
        assert documents[7].tags == ["katalog"] and documents[7].metadata == {"sku": 7}
        assert Chunk.objects.filter(document=documents[7]).get().text == "Produk 7\nProduk nomor 7 tersedia."
    assert [r["id"] for r in response.json()["results"]] == [d.pk for d in documents]
    assert {r["action"] for r in response.json()["results"]} == {"created"}


def test_an_entry_updated_by_external_id_then_its_old_content_in_one_call(tenant_a, scoped):
    """The document is reached twice in one call, by its external_id and by its (old) content: one
    object, so the second entry sees the first's change and stores the old content anew (found in
    review: a second copy of the row was saved over the update, leaving row and chunks apart)."""
    from knowledge.services import entries_upsert
    from knowledge.services.stats import stats_check

    with scoped(tenant_a):
        entries_upsert(tenant=tenant_a, entries=[{"title": "Jam", "content": "Buka jam sembilan.",
                                                   "external_id": "jam"}])
        results = entries_upsert(tenant=tenant_a, entries=[
            {"title": "Jam", "content": "Buka jam sepuluh.", "external_id": "jam"},
            {"title": "Jam", "content": "Buka jam sembilan.", "tags": ["lama"]},
        ])
        assert [r["action"] for r in results] == ["updated", "created"]
        updated = Document.objects.get(external_id="jam")
        assert updated.content == "Buka jam sepuluh." and updated.tags == []
        assert [c.text for c in Chunk.objects.filter(document=updated)] == ["Jam\nBuka jam sepuluh."]
        old = Document.objects.get(external_id=None)
        assert old.content == "Buka jam sembilan." and old.tags == ["lama"]
        assert [c.text for c in Chunk.objects.filter(document=old)] == ["Jam\nBuka jam sembilan."]
        assert stats_check(tenant=tenant_a).ok
