"""One parser per file format, each turning bytes into sections with provenance.

``PARSERS`` maps a file extension to its parser. A section is either prose
(``text``, split later by headings/paragraphs/sentences) or a table (``rows``,
each row already rendered as "Header: value; Header: value" so a price list or
an FAQ sheet is searchable row by row). Every failure is a ``DocumentError``
with an HTTP status and a stable code; no parser lets a hostile file exhaust
memory (upload size, PDF page count, XLSX decompressed size are capped).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from dataclasses import dataclass, field

from django.conf import settings

# pypdf logs a warning per font it cannot fully decode (fontTools missing); the text
# still comes out, and those lines drown the worker's log.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class DocumentError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class Section:
    text: str = ""
    provenance: dict = field(default_factory=dict)
    #: a context line repeated at the top of each of the section's chunks (heading path, sheet name)
    context: str = ""
    #: table sections: (rendered row, provenance of that row)
    rows: list[tuple[str, dict]] | None = None


def _limit(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


# --- text decoding ------------------------------------------------------------------

def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of a text file: UTF-8 (with or without BOM), UTF-16 with BOM,
    else the most likely legacy encoding (cp1252 / latin-1 and friends)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # Legacy files here are overwhelmingly Windows "ANSI" (cp1252). On short samples
    # the detector cannot tell cp1252 from its Central-European/Baltic siblings, so
    # any Latin single-byte guess is read as cp1252; other scripts keep their guess.
    best = from_bytes(data[:200_000]).best()
    encoding = (best.encoding if best is not None else "cp1252").replace("-", "_").lower()
    if encoding.startswith(("cp125", "iso8859", "latin", "mac_", "windows_125", "ascii")) and encoding not in (
            "cp1251", "cp1253", "cp1255", "cp1256", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8"):
        encoding = "cp1252"
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        return data.decode("latin-1"), "latin-1"


# --- PDF ---------------------------------------------------------------------------

def parse_pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentError(422, "file_unreadable", "This file is not a PDF (it does not start with %PDF).")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Owner-password-only PDFs open with an empty user password; anything else cannot be read.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError):
                opened = 0
            if not opened:
                raise DocumentError(422, "pdf_encrypted",
                                    "This PDF is password-protected. Remove the password and upload it again.")
        page_count = len(reader.pages)
        max_pages = _limit("KB_MAX_PDF_PAGES", 500)
        if page_count > max_pages:
            raise DocumentError(422, "too_many_pages", f"This PDF has {page_count} pages; the limit is {max_pages}.",
                                {"pages": page_count, "limit": max_pages})
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                sections.append(Section(text=text, provenance={"page": number}))
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise DocumentError(422, "pdf_encrypted",
                            "This PDF is password-protected. Remove the password and upload it again.") from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DocumentError(422, "file_unreadable", f"This PDF could not be read: {exc}") from None
    return sections


# --- XLSX --------------------------------------------------------------------------

def _check_zip(data: bytes) -> None:
    """Refuse a zip bomb before openpyxl inflates it: the sum of the members'
    declared sizes is capped, and openpyxl reads members lazily (read-only mode)."""
    max_bytes = _limit("KB_MAX_XLSX_UNCOMPRESSED_BYTES", 100 * 1024 * 1024)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise DocumentError(422, "file_unreadable", "This XLSX file is not a valid workbook (bad zip).") from None
    if total > max_bytes:
        raise DocumentError(422, "xlsx_too_large",
                            f"This workbook expands to {total} bytes; the limit is {max_bytes}.",
                            {"uncompressed_bytes": total, "limit": max_bytes})


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _render_rows(rows, provenance_base: dict) -> list[tuple[str, dict]]:
    """The first non-empty row is the header; each later row becomes 'Header: value; ...'."""
    header: list[str] | None = None
    rendered = []
    for number, values in rows:
        cells = [_cell(v) for v in values]
        if not any(cells):
            continue
        if header is None:
            header = [c or f"Column {i + 1}" for i, c in enumerate(cells)]
            continue
        parts = []
        for i, value in enumerate(cells):
            if value:
                name = header[i] if i < len(header) else f"Column {i + 1}"
                parts.append(f"{name}: {value}")
        rendered.append(("; ".join(parts), {**provenance_base, "row": number}))
    if header is not None and not rendered:
        # A sheet with one row only (no header after all): keep its content.
        rendered.append(("; ".join(h for h in header if h), {**provenance_base, "row": 1}))
    return rendered


def parse_xlsx(data: bytes) -> list[Section]:
    from openpyxl import load_workbook

    _check_zip(data)
    max_rows = _limit("KB_MAX_TABLE_ROWS", 200_000)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken workbook
        raise DocumentError(422, "file_unreadable", f"This XLSX file could not be read: {exc}") from None
    sections = []
    try:
        for sheet in workbook.worksheets:
            rows = []
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                if number > max_rows:
                    raise DocumentError(422, "too_many_rows", f"Sheet '{sheet.title}' has more than {max_rows} rows.")
                rows.append((number, values))
            rendered = _render_rows(rows, {"sheet": sheet.title})
            if rendered:
                sections.append(Section(context=f"Sheet: {sheet.title}", provenance={"sheet": sheet.title},
                                        rows=rendered))
    finally:
        workbook.close()
    return sections


# --- CSV / TSV ---------------------------------------------------------------------

def _parse_delimited(data: bytes, delimiter: str | None) -> list[Section]:
    text, _ = decode_text(data)
    if delimiter is None:
        sample = text[:20_000]
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    max_rows = _limit("KB_MAX_TABLE_ROWS", 200_000)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for number, values in enumerate(reader, start=1):
            if number > max_rows:
                raise DocumentError(422, "too_many_rows", f"This table has more than {max_rows} rows.")
            rows.append((number, values))
    except csv.Error as exc:
        raise DocumentError(422, "file_unreadable", f"This table could not be read: {exc}") from None
    rendered = _render_rows(rows, {})
    return [Section(rows=rendered)] if rendered else []


def parse_csv(data: bytes) -> list[Section]:
    return _parse_delimited(data, None)


def parse_tsv(data: bytes) -> list[Section]:
    return _parse_delimited(data, "\t")


# --- Markdown and plain text ---------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def split_markdown(text: str) -> list[Section]:
    """One section per heading, carrying the heading path ("Pengiriman > Biaya")."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buffer: list[str] = []
    in_fence = False

    def flush():
        body = "\n".join(buffer).strip()
        buffer.clear()
        if body:
            headings = [h for _, h in path]
            sections.append(Section(text=body, context=" > ".join(headings),
                                    provenance={"heading_path": headings} if headings else {}))

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, match.group(2).strip())]
        else:
            buffer.append(line)
    flush()
    if not sections and path:  # headings only
        sections.append(Section(text=" > ".join(h for _, h in path), provenance={"heading_path": [h for _, h in path]}))
    return sections


def parse_markdown(data: bytes) -> list[Section]:
    return split_markdown(decode_text(data)[0])


def parse_text(data: bytes) -> list[Section]:
    text = decode_text(data)[0]
    return [Section(text=text)] if text.strip() else []


PARSERS = {
    "pdf": parse_pdf,
    "xlsx": parse_xlsx,
    "csv": parse_csv,
    "tsv": parse_tsv,
    "md": parse_markdown,
    "markdown": parse_markdown,
    "txt": parse_text,
    "text": parse_text,
}
SUPPORTED_TYPES = sorted(PARSERS)


def file_type_of(filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension not in PARSERS:
        raise DocumentError(415, "unsupported_file_type",
                            f"Files of type '.{extension or '?'}' are not supported. "
                            f"Supported: {', '.join('.' + t for t in SUPPORTED_TYPES)}.",
                            {"supported": SUPPORTED_TYPES})
    return {"markdown": "md", "text": "txt"}.get(extension, extension)


def parse_file(data: bytes, filename: str) -> tuple[str, list[Section]]:
    """Parse an upload; raises ``DocumentError`` for a bad type, size or content."""
    file_type = file_type_of(filename)
    max_bytes = _limit("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
    if len(data) > max_bytes:
        raise DocumentError(413, "file_too_large", f"The file is {len(data)} bytes; the limit is {max_bytes}.",
                            {"bytes": len(data), "limit": max_bytes})
    if not data:
        raise DocumentError(422, "empty_document", "The file is empty.")
    sections = PARSERS[file_type](data)
    if not any((s.text or "").strip() or s.rows for s in sections):
        raise DocumentError(422, "empty_document",
                            "No text could be extracted from this file (a scanned PDF needs OCR first).")
    return file_type, sections
