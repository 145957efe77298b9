"""The operator console: list, upload, chunks, actions, search."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from knowledge.models import Chunk, Document, Term
from knowledge.services import entries_upsert

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    User.objects.create_superuser("op", "op@example.com", "pw-123456789")
    client = Client()
    client.login(username="op", password="pw-123456789")
    return client


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
