"""Parsers on real and generated files: every corpus PDF, XLSX/CSV/TSV/Markdown
fixtures in odd encodings, and the limits (size, pages, zip and deflate bombs,
sparse and far-flung spreadsheet cells, binary files posing as text)."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import pytest
from openpyxl import Workbook

from agent_project.testing.needs import corpus_files
from knowledge.ingestion import parsers, pdf, xlsx
from knowledge.ingestion.decoding import decode_text
from knowledge.ingestion.markdown import split_markdown
from knowledge.ingestion.parsers import DocumentError, Section, parse_file

from .conftest import CORPUS

ENCRYPTED = {"libreoffice-writer-password.pdf"}
READABLE_PDFS = corpus_files("pdf/*.pdf", exclude=ENCRYPTED)


def _corpus_index() -> dict[str, dict]:
    """files.json of the corpus: producer, page count and encryption per file name."""
    entries = json.loads((CORPUS / "pdf" / "files.json").read_text())["data"]
    return {entry["path"].rsplit("/", 1)[-1]: entry for entry in entries}


@pytest.mark.corpus
def test_the_corpus_is_there():
    index = _corpus_index()
    assert len(list((CORPUS / "pdf").glob("*.pdf"))) >= 12
    assert {name for name, entry in index.items() if entry["encrypted"]} == ENCRYPTED


@pytest.mark.parametrize("path", READABLE_PDFS)
def test_every_readable_corpus_pdf_gives_text_per_page(path):
    file_type, sections = parse_file(path.read_bytes(), path.name)
    assert file_type == "pdf" and sections
    pages = [s.provenance["page"] for s in sections]
    last_page = _corpus_index().get(path.name, {}).get("pages", 10_000)
    assert pages == sorted(pages) and 1 <= pages[0] and pages[-1] <= last_page
    assert sum(len(s.text.split()) for s in sections) >= 3


@pytest.mark.corpus
def test_encrypted_pdf_is_a_clear_422():
    path = CORPUS / "pdf" / "libreoffice-writer-password.pdf"
    with pytest.raises(DocumentError) as err:
        parse_file(path.read_bytes(), path.name)
    assert (err.value.status, err.value.code) == (422, "pdf_encrypted")
    assert "password" in err.value.message


@pytest.mark.corpus
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


def _pdf_of(objects: list[bytes]) -> bytes:
    """A PDF file of ``objects`` (numbered from 1; the first is the catalog), with its cross-reference table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _pdf(content: bytes, *, flate: bool = False) -> bytes:
    """A one-page PDF in Helvetica whose page content stream is ``content`` (deflated when ``flate``)."""
    stream_head = b"<< /Length %d%s >>\nstream\n" % (len(content), b" /Filter /FlateDecode" if flate else b"")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        stream_head + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf_of(objects)


def test_pdf_deflate_bomb_is_a_clear_422():
    # 80 MB of zeros deflate to ~80 KB; pypdf stops inflating at 75 MB and raises LimitReachedError.
    compressor = zlib.compressobj(9)
    content = b"".join(compressor.compress(bytes(1024 * 1024)) for _ in range(80)) + compressor.flush()
    assert len(content) < 200 * 1024
    with pytest.raises(DocumentError) as err:
        parse_file(_pdf(content, flate=True), "bomb.pdf")
    assert (err.value.status, err.value.code) == (422, "pdf_too_large")
    assert "safe size" in err.value.message


@pytest.mark.parametrize("error", [RecursionError("deep"), IndexError("list index out of range"), struct.error("bad"),
                                   zlib.error("bad"), OverflowError("big"), NotImplementedError(), RuntimeError()],
                         ids=lambda e: f"{type(e).__module__}.{type(e).__name__}")
def test_any_pypdf_failure_on_a_hostile_pdf_is_file_unreadable(monkeypatch, error):
    from pypdf import PageObject

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(PageObject, "extract_text", fail)
    with pytest.raises(DocumentError) as err:
        parse_file(_pdf(b"BT /F1 12 Tf 72 720 Td (Halo) Tj ET"), "hostile.pdf")
    assert (err.value.status, err.value.code) == (422, "file_unreadable")
    assert err.value.message.startswith("This PDF could not be read: ") and len(err.value.message) > 28


def test_pdf_running_out_of_memory_is_not_disguised_as_a_bad_file(monkeypatch):
    from pypdf import PageObject

    def fail(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(PageObject, "extract_text", fail)
    with pytest.raises(MemoryError):
        parse_file(_pdf(b"BT /F1 12 Tf 72 720 Td (Halo) Tj ET"), "a.pdf")


def test_pdf_text_is_nfkc_normalised_and_has_no_nul():
    # \256 is the "fi" ligature in Helvetica's standard encoding; \000 a NUL that PostgreSQL would refuse.
    _, sections = parse_file(_pdf(b"BT /F1 12 Tf 72 720 Td (The mis\\256ts a\\000b) Tj ET"), "a.pdf")
    assert sections[0].text == "The misfits ab"


@pytest.mark.corpus
def test_corpus_pdf_ligatures_become_plain_letters():
    _, sections = parse_file((CORPUS / "pdf" / "crazyones-pdfa.pdf").read_bytes(), "crazyones-pdfa.pdf")
    text = " ".join(s.text for s in sections)
    assert "misfits" in text and "\ufb01" not in text
    _, sections = parse_file((CORPUS / "pdf" / "multicolumn.pdf").read_bytes(), "multicolumn.pdf")
    assert "filled" in " ".join(s.text for s in sections)


@pytest.mark.parametrize("path", READABLE_PDFS)
def test_no_corpus_pdf_keeps_a_ligature_or_nul(path):
    _, sections = parse_file(path.read_bytes(), path.name)
    text = "".join(s.text for s in sections)
    assert not [c for c in text if "\ufb00" <= c <= "\ufb06" or c == "\x00"]


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


def _sparse_xlsx(cells: dict[tuple[int, int], object], title: str = "Sheet1") -> bytes:
    """A workbook holding only ``cells`` ((row, column) -> value): openpyxl writes present cells and nothing else."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    for (row, column), value in cells.items():
        sheet.cell(row=row, column=column, value=value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_value_in_column_xfd_fails_fast_as_too_many_columns():
    # The audit's wide-row bomb: one value per row in the last column (XFD = 16,384), 114 KB for 15k rows.
    data = _sparse_xlsx({(row, 16_384): row for row in range(1, 201)})
    with pytest.raises(DocumentError) as err:
        parse_file(data, "wide.xlsx")
    assert (err.value.status, err.value.code) == (422, "too_many_columns")
    assert err.value.details == {"limit": 1000, "found": 16_384, "row": 1, "sheet": "Sheet1"}


def test_xlsx_far_right_cells_cost_only_themselves(settings):
    # With the column cap lifted, 2,000 rows with a value in XFD must not be padded to 16,384 cells each
    # (openpyxl's iter_rows: 38 s and +1.7 GB for 15k such rows); the row names its real column.
    settings.KB_MAX_TABLE_COLUMNS = 16_384
    cells = {(1, 1): "Produk", (1, 2): "Harga"}
    cells.update({(row, 16_384): f"catatan {row}" for row in range(2, 2_002)})
    data = _sparse_xlsx(cells)
    tracemalloc.start()
    try:
        _, sections = parse_file(data, "wide.xlsx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * 1024 * 1024
    assert sections[0].rows[0] == ("Column 16384: catatan 2", {"sheet": "Sheet1", "row": 2})
    assert len(sections[0].rows) == 2_000


def test_xlsx_rows_skip_empty_columns_and_keep_column_order():
    data = _sparse_xlsx({(1, 1): "Produk", (1, 5): "Harga", (2, 5): 85000, (2, 1): "Kopi Gayo", (2, 9): "baru"})
    _, sections = parse_file(data, "harga.xlsx")
    assert sections[0].rows == [("Produk: Kopi Gayo; Harga: 85000; Column 9: baru", {"sheet": "Sheet1", "row": 2})]


def test_xlsx_value_in_the_last_row_is_not_a_million_rows():
    data = _sparse_xlsx({(1, 1): "Produk", (1, 2): "Harga", (1_048_576, 1): "Kulkas"})
    _, sections = parse_file(data, "tall.xlsx")
    assert sections[0].rows == [("Produk: Kulkas", {"sheet": "Sheet1", "row": 1_048_576})]


def test_xlsx_row_limit_counts_only_rows_with_values(settings):
    settings.KB_MAX_TABLE_ROWS = 3
    data = _sparse_xlsx({(1, 1): "Produk", (1, 2): "Harga", (500, 1): "Kopi", (1_000, 1): "Teh"})
    _, sections = parse_file(data, "harga.xlsx")
    assert [r[1]["row"] for r in sections[0].rows] == [500, 1_000]
    data = _sparse_xlsx({(1, 1): "Produk", (1, 2): "Harga", (500, 1): "Kopi", (1_000, 1): "Teh", (1_001, 1): "Gula"})
    with pytest.raises(DocumentError) as err:
        parse_file(data, "harga.xlsx")
    assert err.value.code == "too_many_rows" and err.value.details == {"limit": 3, "sheet": "Sheet1"}


def test_xlsx_cell_limit_counts_the_whole_workbook(settings):
    settings.KB_MAX_TABLE_CELLS = 10
    data = _xlsx({"A": [["Produk", "Harga"], ["Kopi", 1], ["Teh", 2]],
                  "B": [["Produk", "Harga"], ["Gula", 3], ["Garam", 4]]})
    with pytest.raises(DocumentError) as err:
        parse_file(data, "harga.xlsx")
    assert (err.value.status, err.value.code) == (422, "too_many_cells")
    assert err.value.details == {"limit": 10, "found": 12, "sheet": "B"}


def test_csv_column_limit(settings):
    settings.KB_MAX_TABLE_COLUMNS = 5
    assert parse_file(b"a,b,,,,,,,\n1,2,,,,,,,\n", "padded.csv")[1][0].rows == [("a: 1; b: 2", {"row": 2})]
    with pytest.raises(DocumentError) as err:
        parse_file(b"a,b\n1,2,,,,,x\n", "wide.csv")
    assert err.value.code == "too_many_columns" and err.value.details == {"limit": 5, "found": 7, "row": 2}


def test_blank_rows_cost_little_but_are_capped_too():
    # Excel's sheet maximum bounds the rows read, empty or not: 20 MB of newlines is not a table.
    with pytest.raises(DocumentError) as err:
        parse_file(b"a,b\n1,2\n" + b"\n" * 1_048_576, "blank.csv")
    assert err.value.code == "too_many_rows" and err.value.details == {"limit": 1_048_576}


def test_xlsx_reader_falls_back_to_public_api_if_openpyxl_changes(monkeypatch):
    # The sparse reader uses openpyxl's private WorkSheetParser; without it, parsing still works and is bounded.
    import openpyxl.worksheet._reader

    data = _xlsx({"Harga": [["Produk", "Harga", "Stok"], ["Kopi Gayo 250g", 85000, 12], [None, None, None]]})
    monkeypatch.delattr(openpyxl.worksheet._reader, "WorkSheetParser")
    _, sections = parse_file(data, "harga.xlsx")
    assert sections[0].rows == [("Produk: Kopi Gayo 250g; Harga: 85000; Stok: 12", {"sheet": "Harga", "row": 2})]
    # it reads one column past the cap, so a value there is still refused (values further right go unseen)
    with pytest.raises(DocumentError) as err:
        parse_file(_sparse_xlsx({(1, 1): "a", (1, 1_001): "x", (2, 16_384): "y"}), "wide.xlsx")
    assert err.value.code == "too_many_columns" and err.value.details["found"] == 1_001


TITLED = [["DAFTAR HARGA TOKO MELATI - JANUARI 2026"], [], ["Produk", "Harga", "Garansi"],
          ["Kulkas Sharp SJ-195", 3250000, "12 bulan"], ["Kipas Angin Miyako", 250000, None]]


def test_xlsx_title_rows_above_the_header_are_context_not_header():
    _, sections = parse_file(_xlsx({"Daftar Harga": TITLED}), "harga.xlsx")
    (section,) = sections
    assert section.rows == [
        ("Produk: Kulkas Sharp SJ-195; Harga: 3250000; Garansi: 12 bulan", {"sheet": "Daftar Harga", "row": 4}),
        ("Produk: Kipas Angin Miyako; Harga: 250000", {"sheet": "Daftar Harga", "row": 5}),
    ]
    assert section.context == "Sheet: Daftar Harga — DAFTAR HARGA TOKO MELATI - JANUARI 2026"
    assert section.provenance == {"sheet": "Daftar Harga", "title": "DAFTAR HARGA TOKO MELATI - JANUARI 2026"}


def test_csv_title_rows_above_the_header_are_context_not_header():
    data = ("TOKO MELATI;;\nDAFTAR HARGA JANUARI 2026;;\nProduk;Harga;Garansi\n"
            "Kulkas Sharp SJ-195;3.250.000;12 bulan\n").encode()
    _, sections = parse_file(data, "harga.csv")
    assert sections[0].rows == [("Produk: Kulkas Sharp SJ-195; Harga: 3.250.000; Garansi: 12 bulan", {"row": 4})]
    assert sections[0].context == "TOKO MELATI — DAFTAR HARGA JANUARI 2026"


def test_one_column_lists_keep_their_first_row_as_header():
    _, sections = parse_file(_xlsx({"Kota": [["Kota tujuan"], ["Bandung"], ["Medan"]]}), "kota.xlsx")
    assert sections[0].context == "Sheet: Kota" and sections[0].rows == [
        ("Kota tujuan: Bandung", {"sheet": "Kota", "row": 2}), ("Kota tujuan: Medan", {"sheet": "Kota", "row": 3})]
    # more single values above the first wider row than a title has: still a list under its header
    rows = [["Kota tujuan"]] + [[f"Kota {i}"] for i in range(6)] + [["Ambon", "via laut"]]
    _, sections = parse_file(_xlsx({"Kota": rows}), "kota.xlsx")
    assert sections[0].rows[0][0] == "Kota tujuan: Kota 0"
    assert sections[0].rows[-1][0] == "Kota tujuan: Ambon; Column 2: via laut"


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


@pytest.mark.parametrize("data,text", [
    (b"caf\xe9", "café"),
    ("Harga kopi €2 – murah".encode("cp1252"), "Harga kopi €2 – murah"),
    ("price £5 ©".encode("cp1252"), "price £5 ©"),
    ("Menu café: croissant, crème brûlée, naïve tea".encode("cp1252"), "Menu café: croissant, crème brûlée, naïve tea"),
], ids=["cafe-as-utf16", "euro-dash-as-cp437", "pound-copyright-as-cp932", "french-menu"])
def test_short_cp1252_text_is_not_guessed_as_utf16_or_cjk(data, text):
    assert decode_text(data) == (text, "cp1252")


def test_short_cp1252_csv_price_list():
    data = "Produk;Harga;Keterangan\r\nKopi Café Latte;€2;Promo “spesial” – hari ini\r\n".encode("cp1252")
    _, sections = parse_file(data, "harga.csv")
    assert sections[0].rows == [("Produk: Kopi Café Latte; Harga: €2; Keterangan: Promo “spesial” – hari ini",
                                 {"row": 2})]


@pytest.mark.parametrize("text,encoding", [
    ("Привет мир, как дела? Цена товара 250 рублей, доставка бесплатно.", "cp1251"),
    ("Γειά σου Κόσμε καλημέρα, η τιμή είναι πενήντα ευρώ.", "cp1253"),
    ("مرحبا بالعالم كيف حالك؟ السعر خمسون درهما.", "cp1256"),
])
def test_other_single_byte_scripts_keep_their_letters(text, encoding):
    assert decode_text(text.encode(encoding))[0] == text


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom(encoding):
    data = "produk,harga\r\nKulkas,3000000\r\nKipas “angin”,250000\r\n".encode(encoding)
    _, sections = parse_file(data, "harga.csv")
    assert [r[0] for r in sections[0].rows] == ["produk: Kulkas; harga: 3000000",
                                                "produk: Kipas “angin”; harga: 250000"]


@pytest.mark.parametrize("name,data", [
    ("weird.csv", b"\x00\x01\x02\xff\xfe garbage\x00"),
    ("binary.txt", bytes(range(256)) * 10),
    ("photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"),
    ("controls.tsv", bytes(range(1, 32)) * 20),
], ids=["weird.csv", "binary.txt", "png.md", "controls.tsv"])
def test_binary_files_posing_as_text_are_refused(name, data):
    with pytest.raises(DocumentError) as err:
        parse_file(data, name)
    assert (err.value.status, err.value.code) == (422, "file_unreadable")
    assert "looks like a binary file, not text" in err.value.message


def test_a_stray_nul_far_into_a_text_file_is_dropped():
    text = "Pertanyaan\tJawaban\n" + "Ongkir?\tGratis di atas 200 ribu\n" * 400
    _, sections = parse_file((text + "Retur?\t14 hari\x00\n").encode(), "faq.tsv")
    assert sections[0].rows[-1][0] == "Pertanyaan: Retur?; Jawaban: 14 hari"
    _, sections = parse_file((text + "\x00akhir").encode(), "faq.txt")
    assert "\x00" not in sections[0].text and sections[0].text.endswith("akhir")


def test_no_section_leaves_parse_file_with_a_nul(monkeypatch):
    monkeypatch.setitem(parsers.PARSERS, "txt", lambda data: [
        Section(text="a\x00b", context="c\x00", rows=None), Section(rows=[("x\x00: y", {"row": 2})])])
    _, sections = parse_file(b"anything", "a.txt")
    assert [(s.text, s.context, s.rows) for s in sections] == [("ab", "c", None), ("", "", [("x: y", {"row": 2})])]


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


# --- Review fixes: hostile workbooks and PDFs that fit the size caps, decoding, sheets, Markdown ---------------------

def _xlsx_with_shared_strings(strings: list[str]) -> bytes:
    """A valid workbook whose shared-string table holds ``strings`` (referenced by no cell)."""
    source = zipfile.ZipFile(io.BytesIO(_xlsx({"Sheet1": [["x", "y"]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="http://schemas.openxml'
                                    b'formats.org/officeDocument/2006/relationships/sharedStrings" '
                                    b'Target="sharedStrings.xml"/></Relationships>')
            archive.writestr(info.filename, data)
        body = "".join(f"<si><t>{text}</t></si>" for text in strings)
        archive.writestr("xl/sharedStrings.xml",
                         f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{body}</sst>')
    return out.getvalue()


def _refuse_opening_workbooks(monkeypatch):
    import openpyxl

    def refuse(*args, **kwargs):
        raise AssertionError("the workbook should have been refused before openpyxl opened it")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)


@pytest.mark.parametrize("check", [parse_file, parsers.preflight], ids=["parse", "preflight"])
def test_xlsx_shared_strings_bomb_is_refused_by_its_compression_ratio(monkeypatch, check):
    # The review's bomb, scaled down: 100k tiny strings (1.7 MB of XML) deflate ~400x, under the total-size cap.
    data = _xlsx_with_shared_strings(["ab"] * 100_000)
    assert len(data) < 20_000
    _refuse_opening_workbooks(monkeypatch)
    with pytest.raises(DocumentError) as err:
        check(data, "harga.xlsx")
    assert (err.value.status, err.value.code) == (422, "xlsx_too_large")
    assert err.value.details["member"] == "xl/sharedStrings.xml" and err.value.details["ratio"] > 200
    assert "zip bomb" in err.value.message


def test_xlsx_shared_string_count_is_capped_before_openpyxl_loads_them(monkeypatch, settings):
    settings.KB_MAX_XLSX_SHARED_STRINGS = 1_000
    data = _xlsx_with_shared_strings([f"produk {i}" for i in range(1_500)])
    parsers.preflight(data, "harga.xlsx")  # preflight reads only the zip directory
    _refuse_opening_workbooks(monkeypatch)
    with pytest.raises(DocumentError) as err:
        parse_file(data, "harga.xlsx")
    assert err.value.code == "xlsx_too_large" and err.value.details["limit"] == 1_000


def test_xlsx_shared_strings_too_slow_for_the_request_are_a_parse_timeout(monkeypatch):
    data = _xlsx_with_shared_strings([f"produk {i}" for i in range(1_500)])
    monkeypatch.setattr(xlsx, "_XLSX_SECONDS_PER_SHARED_STRING_BYTE", 1.0)  # as if the table were huge
    with pytest.raises(parsers.ParseTimeout):
        parse_file(data, "harga.xlsx", max_seconds=10)
    assert parse_file(data, "harga.xlsx")[1]  # without a budget (the worker) it is read


def test_xlsx_preflight_checks_the_zip_without_opening_the_workbook(monkeypatch):
    _refuse_opening_workbooks(monkeypatch)
    assert parsers.preflight(_xlsx({"Harga": [["Produk", "Harga"], ["Kopi", 85000]]}), "a.xlsx") == "xlsx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(DocumentError) as err:
        parsers.preflight(buffer.getvalue(), "a.xlsx")
    assert err.value.code == "file_unreadable"


def _pdf_pages_sharing_one_stream(content: bytes, pages: int) -> bytes:
    """``pages`` pages whose /Contents all point to one deflated stream (the review's F4 shape)."""
    stream = zlib.compress(content, 9)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (4 + i) for i in range(pages)),
                                                             pages),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                b"/Contents %d 0 R >>" % (4 + pages)] * pages
    objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return _pdf_of(objects)


def test_pdf_pages_sharing_one_content_stream_are_extracted_once(monkeypatch):
    from pypdf import PageObject

    calls = []
    extract = PageObject.extract_text

    def counted(self, *args, **kwargs):
        calls.append(1)
        return extract(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", counted)
    _, sections = parse_file(_pdf_pages_sharing_one_stream(b"BT /F1 12 Tf 72 720 Td (Halo) Tj ET", 40), "a.pdf")
    assert [s.provenance["page"] for s in sections] == list(range(1, 41))
    assert {s.text for s in sections} == {"Halo"} and len(calls) == 1


def test_pdf_page_too_heavy_for_the_budget_is_refused_before_pypdf_parses_it(monkeypatch, settings):
    data = _pdf_pages_sharing_one_stream(b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * 20_000 + b"ET", 3)
    calls = []
    monkeypatch.setattr("pypdf.PageObject.extract_text", lambda *a, **k: calls.append(1) or "")
    # The request's budget: one page estimated at a tenth of it or more goes to the worker untried.
    monkeypatch.setattr(pdf, "_PDF_SECONDS_PER_CONTENT_BYTE", 1e-5)  # 140 KB of content: 1.4 s estimated
    with pytest.raises(parsers.ParseTimeout) as err:
        parse_file(data, "a.pdf", max_seconds=10)
    assert (err.value.status, err.value.code, err.value.details) == (422, "pdf_too_complex",
                                                                     {"limit_seconds": 10, "page": 1})
    # The worker's budget (KB_PDF_MAX_SECONDS): a page estimated past it is refused outright.
    settings.KB_PDF_MAX_SECONDS = 1
    with pytest.raises(DocumentError) as err:
        parse_file(data, "a.pdf")
    assert err.value.code == "pdf_too_complex" and "too complex" in err.value.message and not calls


def test_a_pathological_pdf_fails_on_its_first_heavy_page_within_the_page_budget(monkeypatch, settings):
    """Twenty pages of 1.4 MB content each (about 2 s apiece for pypdf) held a worker for the whole file's budget.
    With the defaults, the first page is refused on its estimate alone, before pypdf starts on it."""
    data = _pdf_pages_sharing_one_stream(b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * 200_000 + b"ET", 20)
    calls = []
    monkeypatch.setattr("pypdf.PageObject.extract_text", lambda *a, **k: calls.append(1) or "")
    with pytest.raises(DocumentError) as err:
        parse_file(data, "a.pdf")
    assert (err.value.code, err.value.details) == ("pdf_too_complex",
                                                   {"limit_seconds": settings.KB_PDF_PAGE_MAX_SECONDS, "page": 1})
    assert "A page of this PDF would take more than 2 seconds" in err.value.message and not calls
    assert settings.KB_PDF_PAGE_MAX_SECONDS <= 2 and settings.KB_PDF_MAX_SECONDS <= 60  # the defaults


def test_pdf_budget_is_checked_while_a_page_is_read(monkeypatch):
    # Estimates aside (as if free), the deadline still stops pypdf between operators of a page.
    monkeypatch.setattr(pdf, "_PDF_SECONDS_PER_CONTENT_BYTE", 0)
    monkeypatch.setattr(pdf, "_PDF_OPERATORS_PER_CHECK", 1)
    data = _pdf_pages_sharing_one_stream(b"BT /F1 12 Tf 72 720 Td " + b"(a) Tj " * 2_000 + b"ET", 1)
    with pytest.raises(parsers.ParseTimeout) as err:
        parse_file(data, "a.pdf", max_seconds=1e-9)
    assert err.value.code == "pdf_too_complex"


@pytest.mark.parametrize("data,expected", [
    ("Menu: café latte — Rp 35.000\n".encode() + b"Catatan: harga \x93promo\x94\n",
     "Menu: café latte — Rp 35.000\nCatatan: harga “promo”\n"),
    ("Menu: café latte — Rp 35.000\nNasi goreng spésial ☕\n".encode()[:-2],
     "Menu: café latte — Rp 35.000\nNasi goreng spésial "),  # the character cut in half is dropped
])
def test_mostly_utf8_text_stays_utf8_and_only_its_bad_bytes_read_as_cp1252(data, expected):
    assert decode_text(data) == (expected, "utf-8")


def test_cp1252_text_with_one_accidental_utf8_sequence_is_still_cp1252():
    data = "Café crème, naïve, à la carte, déjà vu, façade: ".encode("cp1252") + "Ã©".encode("cp1252")
    assert decode_text(data) == ("Café crème, naïve, à la carte, déjà vu, façade: Ã©", "cp1252")


def test_xlsx_hidden_sheets_and_rows_are_not_indexed():
    workbook = Workbook()
    visible = workbook.active
    visible.title = "Harga"
    for row in (["Produk", "Harga"], ["Kopi", 85000], ["Stok internal", 3], ["Teh", 30000]):
        visible.append(row)
    visible.row_dimensions[3].hidden = True
    for name, state in (("HPP", "veryHidden"), ("Diskon reseller", "hidden")):
        sheet = workbook.create_sheet(name)
        sheet.append(["Produk", "Modal"])
        sheet.append(["Kopi", 41000])
        sheet.sheet_state = state
    buffer = io.BytesIO()
    workbook.save(buffer)
    (section,) = parse_file(buffer.getvalue(), "harga.xlsx")[1]
    assert section.rows == [("Produk: Kopi; Harga: 85000", {"sheet": "Harga", "row": 2}),
                            ("Produk: Teh; Harga: 30000", {"sheet": "Harga", "row": 4})]


def test_xlsx_dates_times_and_percentages_read_as_shown():
    import datetime

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Promo", "Mulai", "Sampai", "Diskon", "Bunga"])
    sheet.append(["Ramadan", datetime.date(2025, 3, 1), datetime.datetime(2025, 3, 30, 21, 30), 0.15, 0.0125])
    sheet["D2"].number_format = "0%"
    sheet["E2"].number_format = "0.00%"
    buffer = io.BytesIO()
    workbook.save(buffer)
    (section,) = parse_file(buffer.getvalue(), "promo.xlsx")[1]
    assert section.rows[0][0] == ("Promo: Ramadan; Mulai: 2025-03-01; Sampai: 2025-03-30 21:30; Diskon: 15%; "
                                  "Bunga: 1.25%")


def test_xlsx_prices_read_as_the_sheet_shows_them():
    """A price list's currency formats: Rupiah with Indonesian separators, other currencies as written (in
    the format's locale, when it names one); a unit in quotes or a plain number format leaves the number as
    it is."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Produk", "Harga", "Grosir", "Ekspor", "Akuntansi", "Isi", "Stok", "Eropa"])
    sheet.append(["Kopi", 25000, 1500.5, 12.5, -25000, 5, 1200, 1234.5])
    for cell, number_format in (("B2", '"Rp"#,##0'), ("C2", "[$Rp-421]#,##0.00"), ("D2", '"$"#,##0.00'),
                                ("E2", '_-[$Rp-421]* #,##0_-;\\-[$Rp-421]* #,##0_-;_-[$Rp-421]* "-"_-;_-@_-'),
                                ("F2", '0 "pcs"'), ("G2", "#,##0"), ("H2", "#,##0.00 [$€-407]")):
        sheet[cell].number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    (section,) = parse_file(buffer.getvalue(), "harga.xlsx")[1]
    assert section.rows[0][0] == ("Produk: Kopi; Harga: Rp25.000; Grosir: Rp1.500,50; Ekspor: $12.50; "
                                  "Akuntansi: -Rp25.000; Isi: 5; Stok: 1200; Eropa: 1.234,50 €")


@pytest.mark.parametrize("name,data,says", [
    ("kosong.csv", b" \n \n", "table"),
    ("kosong.txt", b" \n\t\n", "whitespace"),
    ("kosong.md", b"\n\n", "whitespace"),
    ("kosong.xlsx", None, "workbook"),
    ("scan.pdf", None, "scanned PDF"),
])
def test_empty_document_message_fits_the_file_type(name, data, says):
    if name.endswith(".xlsx"):
        data = _xlsx({"Kosong": []})
    elif name.endswith(".pdf"):
        data = _pdf(b"")
    with pytest.raises(DocumentError) as err:
        parse_file(data, name)
    assert err.value.code == "empty_document" and says in err.value.message
    assert name.endswith(".pdf") or "PDF" not in err.value.message


def test_csv_excel_sep_line_is_the_delimiter_not_a_title():
    _, sections = parse_file(b"sep=;\r\nProduk;Harga\r\nKopi, bubuk;85.000\r\n", "harga.csv")
    assert sections[0].context == "" and sections[0].rows == [("Produk: Kopi, bubuk; Harga: 85.000", {"row": 3})]


@pytest.mark.parametrize("text,paths", [
    ("## Kursus C#\nBelajar C# dasar.", [["Kursus C#"]]),
    ("## Biaya ##\nGratis.", [["Biaya"]]),
    ("   ## Indented\nIsi.", [["Indented"]]),
    ("Pengiriman\n==========\n\nKami kirim via JNE.\n\nBiaya\n-----\n\nRp 10.000.",
     [["Pengiriman"], ["Pengiriman", "Biaya"]]),
    ("```\n~~~\n# not a heading\n```\n# Real\nbody", [None, ["Real"]]),
    ("~~~~\n```\n# not a heading\n~~~\nstill code\n~~~~\n# Real\nbody", [None, ["Real"]]),
    # not setext headings: a thematic break after a blank line, a table's separator row, front matter, a list item
    ("Para.\n\n---\n\nLagi.", [None]),
    ("| a | b |\n|---|---|\n| 1 | 2 |", [None]),
    ("---\ntitle: Harga\n---\n# Harga\nIsi.", [None, ["Harga"]]),
    ("- satu\n---\nteks", [None]),
])
def test_markdown_headings_follow_commonmark(text, paths):
    assert [s.provenance.get("heading_path") for s in split_markdown(text)] == paths


def _formatted_row(values_formats):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append([name for name, _, _ in values_formats])
    sheet.append([value for _, value, _ in values_formats])
    for column, (_, _, number_format) in enumerate(values_formats, start=1):
        sheet.cell(row=2, column=column).number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    (section,) = parse_file(buffer.getvalue(), "harga.xlsx")[1]
    return section.rows[0][0]


@pytest.mark.parametrize("value,number_format,shown", [
    (12.5, '"$"#,##0', "$13"),  # Excel rounds halves away from zero (Python's format: to the even digit)
    (1500.5, '"Rp"#,##0', "Rp1.501"),
    (0.5, '"Rp"#,##0', "Rp1"),
    (2.5, "[$Rp-421]#,##0", "Rp3"),
    (-12.5, '"$"#,##0', "-$13"),
])
def test_half_amounts_round_as_excel_shows_them(value, number_format, shown):
    assert _formatted_row([("Harga", value, number_format)]) == f"Harga: {shown}"
