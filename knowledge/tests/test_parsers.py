"""Parsers on real and generated files: every corpus PDF, XLSX/CSV/TSV/Markdown
fixtures in odd encodings, and the limits (size, pages, zip bombs)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from openpyxl import Workbook

from knowledge.ingestion import parsers
from knowledge.ingestion.parsers import DocumentError, parse_file

from .conftest import CORPUS

PDFS = sorted((CORPUS / "pdf").glob("*.pdf"))
ENCRYPTED = {entry["path"].rsplit("/", 1)[-1] for entry in json.loads((CORPUS / "pdf" / "files.json").read_text())["data"]
             if entry["encrypted"]}
PAGES = {entry["path"].rsplit("/", 1)[-1]: entry["pages"]
         for entry in json.loads((CORPUS / "pdf" / "files.json").read_text())["data"]}


def test_the_corpus_is_there():
    assert len(PDFS) >= 12 and ENCRYPTED == {"libreoffice-writer-password.pdf"}


@pytest.mark.parametrize("path", [p for p in PDFS if p.name not in ENCRYPTED], ids=lambda p: p.name)
def test_every_readable_corpus_pdf_gives_text_per_page(path):
    file_type, sections = parse_file(path.read_bytes(), path.name)
    assert file_type == "pdf" and sections
    pages = [s.provenance["page"] for s in sections]
    assert pages == sorted(pages) and 1 <= pages[0] and pages[-1] <= PAGES.get(path.name, 10_000)
    assert sum(len(s.text.split()) for s in sections) >= 3


def test_encrypted_pdf_is_a_clear_422():
    path = CORPUS / "pdf" / "libreoffice-writer-password.pdf"
    with pytest.raises(DocumentError) as err:
        parse_file(path.read_bytes(), path.name)
    assert (err.value.status, err.value.code) == (422, "pdf_encrypted")
    assert "password" in err.value.message


def test_pdf_page_limit(settings):
    settings.KB_MAX_PDF_PAGES = 3
    path = CORPUS / "pdf" / "pdflatex-4-pages.pdf"
    with pytest.raises(DocumentError) as err:
        parse_file(path.read_bytes(), path.name)
    assert err.value.code == "too_many_pages" and err.value.details == {"pages": 4, "limit": 3}


@pytest.mark.parametrize("data,code", [
    (b"%PDF-1.4 garbage that is not a pdf", "file_unreadable"),
    (b"hello, I am text", "file_unreadable"),
])
def test_broken_pdfs(data, code):
    with pytest.raises(DocumentError) as err:
        parse_file(data, "broken.pdf")
    assert (err.value.status, err.value.code) == (422, code)


def _xlsx(sheets: dict[str, list[list]]) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_rows_become_header_value_text_under_their_sheet():
    data = _xlsx({
        "Harga": [["Produk", "Harga", "Stok"], ["Kopi Gayo 250g", 85000, 12], [None, None, None], ["Teh Melati", 30000.0, 0]],
        "FAQ": [["Pertanyaan", "Jawaban"], ["Bisa COD?", "Bisa untuk Jabodetabek."]],
    })
    file_type, sections = parse_file(data, "katalog.xlsx")
    assert file_type == "xlsx"
    harga, faq = sections
    assert harga.context == "Sheet: Harga"
    assert harga.rows == [("Produk: Kopi Gayo 250g; Harga: 85000; Stok: 12", {"sheet": "Harga", "row": 2}),
                          ("Produk: Teh Melati; Harga: 30000; Stok: 0", {"sheet": "Harga", "row": 4})]
    assert faq.rows == [("Pertanyaan: Bisa COD?; Jawaban: Bisa untuk Jabodetabek.", {"sheet": "FAQ", "row": 2})]


def test_xlsx_zip_bomb_fails_fast(settings):
    settings.KB_MAX_XLSX_UNCOMPRESSED_BYTES = 1024 * 1024
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (8 * 1024 * 1024))
    assert len(buffer.getvalue()) < 64 * 1024  # tiny on disk...
    with pytest.raises(DocumentError) as err:
        parse_file(buffer.getvalue(), "bomb.xlsx")
    assert err.value.code == "xlsx_too_large" and err.value.details["uncompressed_bytes"] > 8 * 1024 * 1024


def test_xlsx_that_is_not_a_zip():
    with pytest.raises(DocumentError) as err:
        parse_file(b"just text", "fake.xlsx")
    assert err.value.code == "file_unreadable"


CSV_TEXT = "Produk;Harga;Catatan\nKopi Gayo;85.000;Kopi pilihan dari Aceh\nCafé crème;40.000;“Spesial” – musim ini\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_csv_encodings_and_delimiter_are_detected(encoding):
    _, sections = parse_file(CSV_TEXT.encode(encoding), "harga.csv")
    rows = sections[0].rows
    assert rows[0] == ("Produk: Kopi Gayo; Harga: 85.000; Catatan: Kopi pilihan dari Aceh", {"row": 2})
    assert rows[1][0] == "Produk: Café crème; Harga: 40.000; Catatan: “Spesial” – musim ini"


def test_latin1_csv_with_comma():
    data = "name,city\nJosé,São Paulo\nRené,Zürich\n".encode("latin-1")
    _, sections = parse_file(data, "people.csv")
    assert [r[0] for r in sections[0].rows] == ["name: José; city: São Paulo", "name: René; city: Zürich"]


def test_tsv_keeps_commas_inside_cells():
    data = b"Pertanyaan\tJawaban\nOngkir?\tGratis, untuk pembelian di atas 200 ribu\n"
    _, sections = parse_file(data, "faq.tsv")
    assert sections[0].rows == [("Pertanyaan: Ongkir?; Jawaban: Gratis, untuk pembelian di atas 200 ribu", {"row": 2})]


def test_markdown_sections_carry_their_heading_path():
    text = ("Intro text.\n\n# Pengiriman\nKami kirim setiap hari.\n\n## Biaya\nGratis di atas 200 ribu.\n\n"
            "```\n# not a heading\n```\n\n# Pembayaran\nTransfer atau QRIS.\n")
    _, sections = parse_file(text.encode(), "faq.md")
    assert [(s.context, s.provenance) for s in sections] == [
        ("", {}),
        ("Pengiriman", {"heading_path": ["Pengiriman"]}),
        ("Pengiriman > Biaya", {"heading_path": ["Pengiriman", "Biaya"]}),
        ("Pembayaran", {"heading_path": ["Pembayaran"]}),
    ]
    assert "# not a heading" in sections[2].text


def test_plain_text_with_bom():
    _, sections = parse_file("\ufeffHalo dunia".encode("utf-8"), "a.txt")
    assert sections[0].text == "Halo dunia"


@pytest.mark.parametrize("name,data,status,code", [
    ("virus.exe", b"MZ...", 415, "unsupported_file_type"),
    ("noextension", b"abc", 415, "unsupported_file_type"),
    ("empty.txt", b"", 422, "empty_document"),
    ("blank.md", b"   \n\n  ", 422, "empty_document"),
])
def test_bad_inputs(name, data, status, code):
    with pytest.raises(DocumentError) as err:
        parse_file(data, name)
    assert (err.value.status, err.value.code) == (status, code)
    if status == 415:
        assert err.value.details["supported"] == parsers.SUPPORTED_TYPES


def test_upload_size_limit(settings):
    settings.MAX_UPLOAD_BYTES = 10
    with pytest.raises(DocumentError) as err:
        parse_file(b"x" * 11, "a.txt")
    assert (err.value.status, err.value.code) == (413, "file_too_large")
