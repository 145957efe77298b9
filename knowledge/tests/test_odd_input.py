"""Odd input the attackers sent: ASCII words separated by NUL bytes were stored from a
.txt as UTF-16 noise ("敨汬o…") while the same bytes as .csv were refused, and /kb/upsert took
a form-encoded body that /chat refuses."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_scopes import scopes_disabled

from conftest import assert_error
from knowledge.models import Document

pytestmark = pytest.mark.django_db

NUL_SEPARATED = [b"hello\x00world\x00" * 50, b"hello\x00world\x00foo\x00" * 40, b"nama\x00harga\x00stok\x00" * 64]


@pytest.fixture(autouse=True)
def _fake_embeddings(settings):
    settings.EMBEDDING_PROVIDER = "fake"


@pytest.mark.parametrize("data", NUL_SEPARATED)
@pytest.mark.parametrize("name", ["catatan.txt", "katalog.csv", "panduan.md", "tabel.tsv"])
def test_binary_text_is_refused_whatever_its_extension(client_a, data, name):
    response = client_a.post("/kb/upload", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert_error(response, 422, "file_unreadable")
    with scopes_disabled():
        assert not Document.objects.exists()


@pytest.mark.parametrize("text", ["Halo kak, toko buka jam 08.00.\r\n", "สวัสดีครับ ร้านเปิด 08.00\r\n",
                                  "价格 Rp 150000, ukuran M\r\n"])
def test_utf16_without_a_bom_still_reads(client_a, text):
    data = (text * 30).encode("utf-16-le")
    response = client_a.post("/kb/upload", {"file": SimpleUploadedFile("catatan.txt", data)}, format="multipart")
    assert response.status_code == 201, response.content
    with scopes_disabled():
        assert text.strip()[:8] in Document.objects.get().chunks.first().text


def test_upsert_accepts_json_only(client_a):
    form = client_a.post("/kb/upsert", {"title": "Jam buka", "content": "Buka jam 8."})  # form-encoded
    assert_error(form, 415, "unsupported_media_type")
    chat = client_a.post("/chat", {"messages": "halo"})
    assert (form.status_code, form.json()["error"]["code"]) == (chat.status_code, chat.json()["error"]["code"])
    with scopes_disabled():
        assert not Document.objects.exists()
    json_body = client_a.post("/kb/upsert", {"title": "Jam buka", "content": "Buka jam 8."}, format="json")
    assert json_body.status_code == 201, json_body.content
