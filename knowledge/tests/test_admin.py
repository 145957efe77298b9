"""The operator console: list, upload, chunks, actions, search."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conftest import staff_client
from knowledge.models import Chunk, Document, Term
from knowledge.services import entries_upsert

pytestmark = pytest.mark.django_db


def test_upload_from_the_admin_then_see_chunks_and_search(operator, tenant_a, tenant_b, scoped):
    response = operator.post("/admin/knowledge/document/add/", {
        "tenant": tenant_a.id, "title": "FAQ toko",
        "upload": SimpleUploadedFile("faq.md", b"# Garansi\nGaransi resmi 12 bulan untuk semua elektronik."),
        "tags_text": "faq",
    })
    assert response.status_code == 302, response.content[:2000]
    with scoped(tenant_a):
        doc = Document.objects.get()
    assert doc.title == "FAQ toko" and doc.status == "ready" and doc.tags == ["faq"]
    page = operator.get(f"/admin/knowledge/document/{doc.pk}/change/").content.decode()
    assert "Garansi resmi 12 bulan" in page and "heading_path" in page
    listing = operator.get("/admin/knowledge/document/").content.decode()
    assert "FAQ toko" in listing and "Search the knowledge base" in listing

    found = operator.get("/admin/knowledge/document/search/", {"tenant": tenant_a.id, "query": "garansi", "k": 3})
    assert found.status_code == 200 and "Garansi resmi 12 bulan" in found.content.decode()
    other = operator.get("/admin/knowledge/document/search/", {"tenant": tenant_b.id, "query": "garansi", "k": 3})
    assert "Garansi resmi" not in other.content.decode() and "0 hits" in other.content.decode()


def test_uploading_a_stored_file_again_says_so_and_shows_it(operator, tenant_a, scoped):
    def add(title):
        return operator.post("/admin/knowledge/document/add/", {
            "tenant": tenant_a.id, "title": title, "upload": SimpleUploadedFile("promo.txt", b"Promo akhir tahun.")},
            follow=True)

    add("Promo")
    page = add("Promo lagi").content.decode()
    with scoped(tenant_a):
        doc = Document.objects.get()
    assert "Identical content is already stored as “Promo”" in page and "was added successfully" not in page
    assert f"/admin/knowledge/document/{doc.pk}/change/" in add("Promo 3").redirect_chain[-1][0]


@pytest.mark.corpus
def test_a_bad_file_is_a_form_error(operator, tenant_a, scoped):
    from .conftest import CORPUS

    data = (CORPUS / "pdf" / "libreoffice-writer-password.pdf").read_bytes()
    response = operator.post("/admin/knowledge/document/add/", {
        "tenant": tenant_a.id, "upload": SimpleUploadedFile("locked.pdf", data)})
    assert response.status_code == 200 and "password-protected" in response.content.decode()
    with scoped(tenant_a):
        assert not Document.objects.exists()


def test_reprocess_and_delete_actions(operator, tenant_a, scoped, django_capture_on_commit_callbacks):
    with scoped(tenant_a):
        [result] = entries_upsert(tenant=tenant_a, entries=[{"title": "Jam", "content": "Buka jam sembilan."}])
    doc = result["document"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        operator.post("/admin/knowledge/document/", {"action": "reprocess", "_selected_action": [doc.pk]})
    assert len(callbacks) == 1
    with scoped(tenant_a):
        assert Document.objects.get().status == "pending"
    from knowledge.tasks import document_process_task

    assert document_process_task(doc.pk) == "ready"
    operator.post("/admin/knowledge/document/", {"action": "delete_with_chunks", "_selected_action": [doc.pk]})
    with scoped(tenant_a):
        assert not Document.objects.exists() and not Chunk.objects.exists() and not Term.objects.exists()


def test_an_upload_while_the_embedder_is_down_says_so_and_stores_nothing(operator, tenant_a, scoped, monkeypatch):
    from agent_project.lib.embeddings import EmbeddingError, get_embedder

    def down(texts, kind):
        raise EmbeddingError("Gemini embedding failed: 503 UNAVAILABLE")

    monkeypatch.setattr(get_embedder(), "_embed", down)
    response = operator.post("/admin/knowledge/document/add/", {
        "tenant": tenant_a.id, "upload": SimpleUploadedFile("promo.txt", b"Promo akhir tahun.")}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and response.redirect_chain[-1][0].endswith("/admin/knowledge/document/add/")
    assert "Nothing was stored: The embedding model is unavailable; try again later." in page
    with scoped(tenant_a):
        assert not Document.objects.exists()


def test_every_chunk_of_a_document_is_listed_read_only(operator, tenant_a, tenant_b, scoped, settings):
    settings.KB_SYNC_MAX_CHUNKS = 500
    body = "\n\n".join(f"# Bagian {i}\n\nPasal {i}: ketentuan nomor {i} berlaku untuk cabang {i}." for i in range(60))
    with scoped(tenant_a):
        doc = entries_upsert(tenant=tenant_a, entries=[{"title": "Syarat", "content": body}])[0]["document"]
        entries_upsert(tenant=tenant_a, entries=[{"title": "Lain", "content": "Dokumen lain, ketentuan lain."}])
        count = Chunk.objects.filter(tenant=tenant_a, document=doc).count()
        last = Chunk.objects.filter(tenant=tenant_a, document=doc).order_by("-position").first()
    with scoped(tenant_b):
        entries_upsert(tenant=tenant_b, entries=[{"title": "Syarat B", "content": "Pasal rahasia tenant B."}])
    assert count > 50  # more than the document page shows
    page = operator.get(f"/admin/knowledge/document/{doc.pk}/change/").content.decode()
    link = f"/admin/knowledge/chunk/?tenant__id__exact={tenant_a.pk}&amp;document={doc.pk}"
    assert link in page and f"All {count} chunks" in page and "Pasal 59" not in page

    listing = operator.get(link.replace("&amp;", "&") + "&p=2")
    text = listing.content.decode()
    assert listing.status_code == 200 and "Pasal 59" in text  # the second page of 50
    assert "Dokumen lain" not in text and "rahasia" not in text
    found = operator.get("/admin/knowledge/chunk/", {"tenant__id__exact": tenant_a.pk, "q": "rahasia"})
    assert "Pasal rahasia" not in found.content.decode() and "0 results" in found.content.decode()
    theirs = operator.get("/admin/knowledge/chunk/", {"tenant__id__exact": tenant_b.pk, "q": "rahasia"})
    assert "Pasal rahasia" in theirs.content.decode()

    detail = operator.get(f"/admin/knowledge/chunk/{last.pk}/change/")
    assert detail.status_code == 200 and last.search_text in detail.content.decode()
    assert operator.post(f"/admin/knowledge/chunk/{last.pk}/change/", {"text": "diubah"}).status_code == 403
    assert operator.get("/admin/knowledge/chunk/add/").status_code == 403
    assert operator.post(f"/admin/knowledge/chunk/{last.pk}/delete/", {"post": "yes"}).status_code == 403
    with scoped(tenant_a):
        assert Chunk.objects.get(pk=last.pk).text != "diubah"


# --- permissions and odd input (an adversarial review of this admin) ------------------------

def _staff(*codenames):
    return staff_client(*(f"knowledge.{codename}" for codename in codenames))


def _entry(tenant, scoped, title="Jam", content="Buka jam sembilan pagi."):
    with scoped(tenant):
        return entries_upsert(tenant=tenant, entries=[{"title": title, "content": content}])[0]["document"]


def test_the_search_page_needs_the_permission_to_view_documents(tenant_b, scoped):
    _entry(tenant_b, scoped, "Harga grosir", "Harga grosir rahasia untuk reseller: Rp 9.000.")
    query = {"tenant": tenant_b.id, "query": "harga grosir", "k": 5}
    stranger = _staff()  # staff, without any knowledge permission
    assert stranger.get("/admin/knowledge/document/").status_code == 403
    response = stranger.get("/admin/knowledge/document/search/", query)
    assert response.status_code == 403 and "rahasia" not in response.content.decode()
    assert "rahasia" in _staff("view_document").get("/admin/knowledge/document/search/", query).content.decode()


def test_actions_need_the_permission_they_use(tenant_a, scoped, django_capture_on_commit_callbacks):
    doc = _entry(tenant_a, scoped)
    viewer = _staff("view_document")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        viewer.post("/admin/knowledge/document/", {"action": "reprocess", "_selected_action": [doc.pk]})
        viewer.post("/admin/knowledge/document/", {"action": "delete_with_chunks", "_selected_action": [doc.pk]})
    assert not callbacks
    with scoped(tenant_a):
        assert Document.objects.get(pk=doc.pk).status == "ready" and Chunk.objects.filter(document=doc).exists()
    editor = _staff("view_document", "change_document")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        editor.post("/admin/knowledge/document/", {"action": "reprocess", "_selected_action": [doc.pk]})
    assert len(callbacks) == 1
    _staff("view_document", "delete_document").post(
        "/admin/knowledge/document/", {"action": "delete_with_chunks", "_selected_action": [doc.pk]})
    with scoped(tenant_a):
        assert not Document.objects.exists() and not Chunk.objects.exists()


def test_the_delete_button_of_a_document_page_deletes_it_with_its_chunks(operator, tenant_a, scoped):
    doc = _entry(tenant_a, scoped)
    _entry(tenant_a, scoped, "Lain", "Dokumen lain tetap ada.")
    page = operator.get(f"/admin/knowledge/document/{doc.pk}/delete/").content.decode()
    assert "permission to delete" not in page and "Chunks: 1" in page
    response = operator.post(f"/admin/knowledge/document/{doc.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with scoped(tenant_a):
        assert list(Document.objects.values_list("title", flat=True)) == ["Lain"]
        assert not Chunk.objects.filter(document_id=doc.pk).exists()
        assert not Term.objects.filter(term="jam").exists() and Term.objects.filter(term="lain").exists()
    viewer = _staff("view_document")
    assert viewer.post(f"/admin/knowledge/document/{doc.pk + 1}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.parametrize("tags_text,error", [
    ("x" * 65 + ",ok", "at most 64 characters"),
    (",".join(f"t{i}" for i in range(51)), "At most 50 tags"),
])
def test_admin_upload_refuses_tags_the_api_refuses(operator, tenant_a, scoped, tags_text, error):
    response = operator.post("/admin/knowledge/document/add/", {
        "tenant": tenant_a.id, "upload": SimpleUploadedFile("a.txt", b"Halo, toko kami buka setiap hari."),
        "tags_text": tags_text})
    assert response.status_code == 200 and error in response.content.decode()
    with scoped(tenant_a):
        assert not Document.objects.exists()


def test_a_duplicate_upload_is_not_recorded_as_added(operator, tenant_a, scoped):
    from django.contrib.admin.models import ADDITION, LogEntry

    from agent_project.models import AuditEvent

    for title in ("Promo", "Promo lagi"):
        operator.post("/admin/knowledge/document/add/", {
            "tenant": tenant_a.id, "title": title, "upload": SimpleUploadedFile("promo.txt", b"Promo akhir tahun.")})
    with scoped(tenant_a):
        doc = Document.objects.get()
    assert LogEntry.objects.filter(action_flag=ADDITION, object_id=str(doc.pk)).count() == 1
    assert AuditEvent.objects.filter(action="create", object_id=str(doc.pk)).count() == 1


def test_a_file_too_slow_to_read_in_the_request_is_queued(operator, tenant_a, scoped, settings, monkeypatch):
    """The form reads the file within the request's budget, as the API does, and a file
    that needs longer is queued for the worker (whose budget is longer)."""
    import time

    from knowledge.ingestion import parsers

    settings.KB_SYNC_PARSE_SECONDS = 1
    budgets = []

    def slow_xlsx(data, *, max_seconds=None):
        budgets.append(max_seconds)
        if max_seconds is not None and max_seconds < 3:
            time.sleep(0.2)  # as far as the budget lets it read
            raise parsers.ParseTimeout(422, "xlsx_too_slow", "too slow")
        return [parsers.Section(text="Isi workbook harga")]

    monkeypatch.setitem(parsers.PARSERS, "xlsx", slow_xlsx)
    monkeypatch.setattr(parsers, "_check_zip", lambda data: {})  # not a real workbook
    response = operator.post("/admin/knowledge/document/add/", {
        "tenant": tenant_a.id, "upload": SimpleUploadedFile("harga.xlsx", b"PK-not-really-a-zip")})
    assert response.status_code == 302
    with scoped(tenant_a):
        assert Document.objects.get().status == "pending"
    assert budgets and None not in budgets


def test_a_tenant_with_a_knowledge_base_can_be_deleted_from_the_admin(operator, tenant_a, tenant_b, scoped, settings,
                                                                      django_capture_on_commit_callbacks):
    """Its chunks (whose admin is read-only) made Django refuse the delete page; the page now
    counts what goes, and the files of its documents go too."""
    from pathlib import Path

    for tenant in (tenant_a, tenant_b):
        operator.post("/admin/knowledge/document/add/", {
            "tenant": tenant.id, "upload": SimpleUploadedFile("jam.txt", b"Toko buka jam sembilan pagi.")})
    with scoped(tenant_a):
        mine = Path(Document.objects.get().source_file.path)
    with scoped(tenant_b):
        theirs = Path(Document.objects.get().source_file.path)
    assert mine.exists() and theirs.exists()
    page = operator.get(f"/admin/tenants/tenant/{tenant_a.pk}/delete/").content.decode()
    assert "permission to delete" not in page and "Chunks: 1" in page and "Documents: 1" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"/admin/tenants/tenant/{tenant_a.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with scoped(tenant_a):
        assert not Document.objects.exists() and not Chunk.objects.exists() and not Term.objects.exists()
    with scoped(tenant_b):
        assert Document.objects.count() == 1 and Chunk.objects.count() == 1
    assert not mine.exists() and theirs.exists()
