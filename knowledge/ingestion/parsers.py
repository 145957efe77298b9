"""One parser per file format, each turning bytes into sections with provenance, behind one map.

``PARSERS`` maps a file extension to its parser (``pdf``, ``xlsx``, ``delimited`` for CSV/TSV,
``markdown``, ``text``; each a module of its own beside this one). A section is either prose
(``text``, split later by headings/paragraphs/sentences) or a table (``rows``, each row already
rendered as "Header: value; Header: value" so a price list or an FAQ sheet is searchable row by
row). Every failure is a ``DocumentError`` with an HTTP status and a stable code; no parser lets
a hostile file exhaust memory or the CPU (upload size, PDF page count, stream size and
text-extraction time, XLSX decompressed size, compression ratio and shared strings, and a
table's rows, columns and cells are capped), and no section ever holds a NUL character
(PostgreSQL refuses it in text). ``parse_file`` takes an optional time budget: the upload request
passes a short one and hands a file that needs more to the worker (``ParseTimeout``).

A new format: a module with ``parse_<format>(data) -> list[Section]`` (taking ``max_seconds`` if
it can be slow, as ``parse_file`` passes it to ``pdf`` and ``xlsx``), an entry in ``PARSERS``, and
its cheap checks in ``preflight``.
"""

from __future__ import annotations

from knowledge.ingestion.common import DocumentError, ParseTimeout, Section, _limit
from knowledge.ingestion.decoding import decode_text
from knowledge.ingestion.delimited import parse_csv, parse_tsv
from knowledge.ingestion.markdown import parse_markdown
from knowledge.ingestion.pdf import _open_pdf, _pdf_errors, parse_pdf
from knowledge.ingestion.text import parse_text
from knowledge.ingestion.xlsx import _check_zip, parse_xlsx

__all__ = ["PARSERS", "SUPPORTED_TYPES", "DocumentError", "ParseTimeout", "Section", "file_type_of", "parse_file",
           "preflight"]

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


def _without_nul(section: Section) -> Section:
    """Last guard: PostgreSQL refuses NUL in text, and one left by any parser would fail the whole document."""
    section.text, section.context = section.text.replace("\x00", ""), section.context.replace("\x00", "")
    if section.rows is not None:
        section.rows = [(text.replace("\x00", ""), provenance) for text, provenance in section.rows]
    return section


def _sized_type(data: bytes, filename: str) -> str:
    """The file's type, once it is known to be supported, not empty and within ``MAX_UPLOAD_BYTES``."""
    file_type = file_type_of(filename)
    max_bytes = _limit("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
    if len(data) > max_bytes:
        raise DocumentError(413, "file_too_large", f"The file is {len(data)} bytes; the limit is {max_bytes}.",
                            {"bytes": len(data), "limit": max_bytes})
    if not data:
        raise DocumentError(422, "empty_document", "The file is empty.")
    return file_type


_EMPTY_MESSAGES = {
    "pdf": "No text could be extracted from this PDF (a scanned PDF needs OCR first).",
    "xlsx": "The workbook has no values in its visible sheets.",
    "csv": "The table has no rows with values.",
    "tsv": "The table has no rows with values.",
}


def parse_file(data: bytes, filename: str, *, max_seconds: float | None = None) -> tuple[str, list[Section]]:
    """Parse an upload; raises ``DocumentError`` for a bad type, size or content. ``max_seconds`` bounds the time a
    PDF or workbook may take (a PDF otherwise has ``KB_PDF_MAX_SECONDS``); past it ``ParseTimeout`` is raised."""
    file_type = _sized_type(data, filename)
    parser = PARSERS[file_type]
    parsed = parser(data, max_seconds=max_seconds) if file_type in ("pdf", "xlsx") else parser(data)
    sections = [_without_nul(section) for section in parsed]
    if not any((s.text or "").strip() or s.rows for s in sections):
        raise DocumentError(422, "empty_document",
                            _EMPTY_MESSAGES.get(file_type, "The file holds no text, only whitespace."))
    return file_type, sections


def preflight(data: bytes, filename: str) -> str:
    """The checks of ``parse_file`` that cost little whatever the file's size: its type, size, and for a PDF the
    header, encryption and page count, for a workbook its zip directory (declared sizes, compression ratios, parts
    present: openpyxl is not opened, since opening a workbook loads its whole shared-string table), for text whether
    it decodes and is not binary. An upload too big to process in the request runs these before it is queued, so a
    locked or broken file is refused at once (422) instead of answering 202 and failing in the worker later.
    Returns the file type."""
    file_type = _sized_type(data, filename)
    if file_type == "pdf":
        with _pdf_errors():
            _open_pdf(data)
    elif file_type == "xlsx":
        _check_zip(data)
    else:
        decode_text(data)
    return file_type
