"""One parser per file format, each turning bytes into sections with provenance.

``PARSERS`` maps a file extension to its parser. A section is either prose
(``text``, split later by headings/paragraphs/sentences) or a table (``rows``,
each row already rendered as "Header: value; Header: value" so a price list or
an FAQ sheet is searchable row by row). Every failure is a ``DocumentError``
with an HTTP status and a stable code; no parser lets a hostile file exhaust
memory or the CPU (upload size, PDF page count, stream size and text-extraction time,
XLSX decompressed size, compression ratio and shared strings, and a table's rows,
columns and cells are capped), and no section ever holds a NUL character (PostgreSQL
refuses it in text). ``parse_file`` takes an optional time budget: the upload request
passes a short one and hands a file that needs more to the worker (``ParseTimeout``).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import itertools
import logging
import re
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings

# pypdf logs a warning per font it cannot fully decode (fontTools missing); the text
# still comes out, and those lines drown the worker's log.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class DocumentError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class ParseTimeout(DocumentError):
    """Parsing would take longer than the time it was given. With the worker's budget that is the answer (422);
    with the request's shorter one the caller queues the file for the worker instead."""


class _Budget:
    """A deadline for one file's parsing, checked between pages or rows and every few thousand PDF operators.

    ``max_step`` also refuses to start one uninterruptible step (pypdf parsing a page's content stream, openpyxl
    loading shared strings) estimated to need more: the upload request gives it, so a step that alone would hold
    the web thread for seconds goes to the worker without being tried."""

    def __init__(self, seconds: float | None, code: str, what: str, max_step: float | None = None):
        self.seconds, self.code, self.what, self.max_step = seconds, code, what, max_step
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def check(self, ahead: float = 0.0, **details) -> None:
        """Fail when the deadline has passed, or would pass after ``ahead`` more seconds of estimated work."""
        if self.deadline is not None and (time.monotonic() + ahead > self.deadline or (
                self.max_step is not None and ahead > self.max_step)):
            raise ParseTimeout(422, self.code, f"{self.what} would take more than {self.seconds:g} seconds to read; "
                                               "it is too complex to index.",
                               {"limit_seconds": self.seconds, **details})


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

#: Multi-byte encodings a detector proposes for short Latin text ("caf\xe9" read as UTF-16, "\xa35" as cp932);
#: taken only when cp1252 is no plausible reading and the sample has enough non-ASCII bytes to judge by.
_MULTIBYTE = ("utf_16", "utf_32", "cp932", "shift_jis", "euc_jp", "iso2022", "gb2312", "gbk", "gb18030", "hz",
              "big5", "cp950", "cp949", "euc_kr", "johab")
_NON_LATIN_SINGLE_BYTE = ("cp1251", "cp1253", "cp1255", "cp1256", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8")
_ASCII = bytes(range(128))
_BINARY_SAMPLE = 8192
_UNREADABLE_BINARY = "This file looks like a binary file, not text. Save it as plain text (UTF-8) and upload it again."


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """Windows "Unicode" exports may carry no BOM; read as UTF-8 they would "succeed" with a NUL every other
    character. Latin text in UTF-16 has NUL as its high byte: at odd offsets (LE) or even ones (BE)."""
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even_nuls, odd_nuls = sample[0:pairs * 2:2].count(0), sample[1:pairs * 2:2].count(0)
    for encoding, high, low in (("utf-16-le", odd_nuls, even_nuls), ("utf-16-be", even_nuls, odd_nuls)):
        if high >= pairs * 0.3 and low <= pairs * 0.05:
            try:
                return data[:len(data) // 2 * 2].decode(encoding), encoding
            except UnicodeDecodeError:
                return None
    return None


def _reads_as_latin(text: str) -> bool:
    """cp1252 decodes almost any byte string, Cyrillic or Greek too; but Latin-script text is mostly ASCII
    letters, whereas cp1251/cp1253/... text read as cp1252 is nearly all accented letters ("Ïðèâåò")."""
    letters = [c for c in text[:20_000] if c.isalpha()]
    return sum(c > "\x7f" for c in letters) <= len(letters) * 0.3


def _decode_legacy(data: bytes) -> tuple[str, str]:
    """Bytes that are not UTF-8 and carry no BOM. The businesses here write Indonesian or English, so their
    legacy files are overwhelmingly Windows "ANSI" (cp1252); a detector guessing on a short sample picks
    UTF-16, cp437 or cp932 for them, so cp1252 is tried first and the detector only asked when it does not fit."""
    try:
        cp1252 = data.decode("cp1252")  # Python refuses cp1252's five undefined bytes, so no C1 controls get through
    except UnicodeDecodeError:
        cp1252 = None
    if cp1252 is not None and _reads_as_latin(cp1252):
        return cp1252, "cp1252"
    from charset_normalizer import from_bytes

    sample = data[:200_000]
    best = from_bytes(sample).best()
    if best is not None:
        encoding = best.encoding.replace("-", "_").lower()
        if encoding.startswith(("cp125", "iso8859", "latin", "mac_", "windows_125", "ascii")) and (
                encoding not in _NON_LATIN_SINGLE_BYTE):
            # On short samples the detector cannot tell cp1252 from its Central-European/Baltic siblings.
            encoding = "cp1252"
        # Here cp1252 has already failed; a multi-byte guess still needs a sample long enough to judge by.
        confident = best.chaos <= 0.1 and len(sample.translate(None, _ASCII)) >= 32
        if not encoding.startswith(_MULTIBYTE) or confident:
            try:
                return data.decode(encoding), encoding
            except (UnicodeDecodeError, LookupError):
                pass
    if cp1252 is not None:
        return cp1252, "cp1252"
    return data.decode("latin-1"), "latin-1"


def _mostly_utf8(data: bytes) -> str | None:
    """Text that is UTF-8 but for a few lines: a cp1252 line appended to a UTF-8 export, or an export cut in the
    middle of a character. Read as cp1252 throughout, every correct accent and dash of it would turn to mojibake
    ("cafÃ©"). Decided line by line: a line that is valid UTF-8 is read as UTF-8, any other as cp1252, and a
    character cut at the very end is dropped. Only when the UTF-8 evidence is strong: a line holding a character of
    three bytes or more (cp1252 text almost never makes one: an accented letter and two symbols in a row), or more
    valid non-ASCII lines than invalid ones; else None (a cp1252 file with one accidental pair, "CAFÉ”", stays
    cp1252)."""
    lines = data.split(b"\n")
    parts, good, bad, strong = [], 0, 0, False
    for index, line in enumerate(lines):
        if line.isascii():
            parts.append(line.decode("ascii"))
            continue
        try:
            parts.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if index == len(lines) - 1 and exc.reason == "unexpected end of data":
                try:  # the file ends inside a character: keep what precedes it
                    parts.append(line[:exc.start].decode("utf-8"))
                    continue
                except UnicodeDecodeError:
                    pass
            bad += 1
            parts.append(line.decode("cp1252", errors="replace"))
            continue
        good += 1
        strong = strong or bool(_UTF8_THREE_BYTES.search(line))
    if not good or not (strong or good > bad):
        return None
    return "\n".join(parts)


_UTF8_THREE_BYTES = re.compile(rb"[\xe0-\xf4][\x80-\xbf]{2}")


def _looks_binary(text: str) -> bool:
    """A NUL in the first 8 KB (git's and grep's test), or many control characters other than tab, newlines and
    form feed: an image or archive renamed to .txt or .csv, which would otherwise be indexed as noise."""
    sample = text[:_BINARY_SAMPLE]
    if "\x00" in sample:
        return True
    controls = sum(1 for c in sample if (c < " " and c not in "\t\n\r\f") or "\x7f" <= c <= "\x9f")
    return controls > len(sample) * 0.1


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of a text file: UTF-32/16 or UTF-8 with a BOM, UTF-16 without one, UTF-8, else a legacy
    single-byte encoding (cp1252 first); bytes that are overwhelmingly UTF-8 stay UTF-8 (``_mostly_utf8``). A file
    that still looks binary is refused; a stray NUL further on is dropped, since PostgreSQL cannot store it."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        text, encoding = data.decode("utf-32", errors="replace"), "utf-32"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text, encoding = data.decode("utf-16", errors="replace"), "utf-16"
    elif data.startswith(b"\xef\xbb\xbf"):
        text, encoding = data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    elif (utf16 := _utf16_without_bom(data)) is not None:
        text, encoding = utf16
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            repaired = _mostly_utf8(data)
            text, encoding = (repaired, "utf-8") if repaired is not None else _decode_legacy(data)
    if _looks_binary(text):
        raise DocumentError(422, "file_unreadable", _UNREADABLE_BINARY)
    return text.replace("\x00", ""), encoding


# --- PDF ---------------------------------------------------------------------------

def _pdf_text(text: str) -> str:
    """NFKC turns the ligatures, full-width forms and non-breaking spaces that PDF fonts use back into the
    letters people type ("mis\ufb01ts" -> "misfits"), so keyword search and the embedder both match them."""
    return unicodedata.normalize("NFKC", text).replace("\x00", "")


def _open_pdf(data: bytes):
    """A ``PdfReader`` for ``data`` once the checks that need no page content pass: the header, the encryption
    (an owner-password-only PDF opens with an empty user password) and the page count."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentError(422, "file_unreadable", "This file is not a PDF (it does not start with %PDF).")
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
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
    return reader


@contextmanager
def _pdf_errors():
    """What pypdf raises, as the ``DocumentError`` a caller answers with."""
    from pypdf.errors import FileNotDecryptedError, LimitReachedError

    try:
        yield
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise DocumentError(422, "pdf_encrypted",
                            "This PDF is password-protected. Remove the password and upload it again.") from None
    except LimitReachedError:
        # pypdf stops inflating a stream past its own limit (75 MB): a deflate bomb or an absurd page.
        raise DocumentError(422, "pdf_too_large",
                            "This PDF holds content that expands beyond a safe size when decompressed; "
                            "it cannot be read.") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - on hostile input pypdf raises anything, RecursionError to struct.error
        raise DocumentError(422, "file_unreadable",
                            f"This PDF could not be read: {str(exc) or type(exc).__name__}") from None


#: pypdf's cost to parse and walk a content stream, per decoded byte (measured: 1.4 MB of "(a) Tj" took 2.3 s). A
#: page whose estimated cost is over the time left is refused before pypdf starts on it, since its parse cannot be
#: interrupted.
_PDF_SECONDS_PER_CONTENT_BYTE = 1.5e-6
#: the extraction's deadline is checked every this many content-stream operators
_PDF_OPERATORS_PER_CHECK = 4096


def _request_step(max_seconds: float | None) -> float | None:
    """An explicit budget is the request's: there, one step may take a tenth of it."""
    return None if max_seconds is None else max_seconds / 10


def _page_content_key(page) -> tuple | None:
    """What a page's text depends on: its content streams (by object number), resources and rotation. Pages
    sharing all three read the same, so their text is extracted once: a few-KB PDF whose hundreds of pages point to
    one heavy stream would otherwise make pypdf parse it once per page (2.4 s each). None when a page's content is
    not an indirect object (nothing to share)."""
    from pypdf.generic import ArrayObject, IndirectObject

    contents = page.raw_get("/Contents") if "/Contents" in page else None
    refs = contents if isinstance(contents, ArrayObject) else [contents]
    if not refs or not all(isinstance(ref, IndirectObject) for ref in refs):
        return None
    resources = page.raw_get("/Resources") if "/Resources" in page else None
    resources = (resources.idnum, resources.generation) if isinstance(resources, IndirectObject) else repr(resources)
    if len(resources) > 10_000:  # an inline resource dictionary is small; a huge one is not worth comparing
        return None
    return tuple((ref.idnum, ref.generation) for ref in refs), resources, repr(page.get("/Rotate", 0))


def _page_text(page, budget: _Budget, number: int) -> str:
    contents = page.get_contents()
    size = len(contents.get_data()) if contents is not None else 0
    budget.check(ahead=size * _PDF_SECONDS_PER_CONTENT_BYTE, page=number)
    operators = 0

    def visit(*_):
        nonlocal operators
        operators += 1
        if operators % _PDF_OPERATORS_PER_CHECK == 0:
            budget.check(page=number)

    return _pdf_text(page.extract_text(visitor_operand_before=visit) or "")


def parse_pdf(data: bytes, *, max_seconds: float | None = None) -> list[Section]:
    """One section per page with text. Extraction has a time budget (``max_seconds``, else ``KB_PDF_MAX_SECONDS``),
    checked between pages and while a page is read: past it the file is refused as ``pdf_too_complex``."""
    seconds = max_seconds if max_seconds is not None else _limit("KB_PDF_MAX_SECONDS", 120)
    budget = _Budget(seconds, "pdf_too_complex", "This PDF's text", _request_step(max_seconds))
    with _pdf_errors():
        reader = _open_pdf(data)
        sections = []
        extracted: dict[tuple, str] = {}
        for number, page in enumerate(reader.pages, start=1):
            budget.check(page=number)
            key = _page_content_key(page)
            text = extracted.get(key) if key is not None else None
            if text is None:
                text = _page_text(page, budget, number)
                if key is not None:
                    extracted[key] = text
            if text.strip():
                sections.append(Section(text=text, provenance={"page": number}))
    return sections


# --- Tables (XLSX, CSV, TSV) ---------------------------------------------------

#: a table row as (row number, [(column number, cell text), ...]): only non-empty cells, in column order
Row = tuple[int, list[tuple[int, str]]]

#: single-cell rows above the first multi-cell row read as the table's title (shop, address, "DAFTAR HARGA ...")
_MAX_TITLE_LINES = 5
#: rows read per file, empty ones included: Excel's sheet maximum. An empty row costs ~10 us to skip, so this keeps
#: a file of a million blank rows (or one row element repeated) within the time a full-size dense table takes.
_MAX_ROWS_READ = 1_048_576


def _cell(value, shown: Callable[[float], str] | None = None) -> str:
    """A cell's text as the sheet shows it, for the formats that matter to a reader: whole numbers without ".0",
    dates without a midnight time, and a number with a percentage or currency format as the sheet shows it (0.15 as
    "15%", 25000 as "Rp25.000"; ``shown``, from ``_number_styles``)."""
    if value is None:
        return ""
    if shown is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return shown(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, datetime.datetime):
        if not (value.hour or value.minute or value.second or value.microsecond):
            value = value.date()
        else:
            value = value.isoformat(sep=" ", timespec="seconds" if value.second else "minutes")
    elif isinstance(value, datetime.time):
        value = value.isoformat(timespec="seconds" if value.second else "minutes")
    return str(value).replace("\x00", "").strip()


class _TableLimits:
    """Counts non-empty rows (per sheet), the column each value sits in, and non-empty cells (per file), failing on
    the first row over a limit. Empty rows and cells cost nothing, so a sheet whose only value sits in row 1,048,576
    or column XFD is as cheap as a small one; these caps bound what a dense table can make us render and embed."""

    def __init__(self, budget: _Budget | None = None):
        self.budget = budget
        self.max_rows = _limit("KB_MAX_TABLE_ROWS", 200_000)
        # Price lists and FAQ sheets use a handful of columns, wide exports a few hundred; a value in column 1,000+
        # is not a table a customer asks about, and each column becomes a "Header: value" pair in the row's text.
        self.max_columns = _limit("KB_MAX_TABLE_COLUMNS", 1_000)
        # 200k rows x 10 columns, a very large price list: about a minute at openpyxl's pace, ~250 MB peak.
        self.max_cells = _limit("KB_MAX_TABLE_CELLS", 2_000_000)
        self.cells = self.rows_read = 0

    def checked(self, rows: Iterable[Row], sheet: str | None = None) -> Iterator[Row]:
        where = f"Sheet '{sheet}'" if sheet is not None else "This table"
        located = {"sheet": sheet} if sheet is not None else {}
        count = 0
        for number, cells in rows:
            self.rows_read += 1
            if self.budget is not None and self.rows_read % 1024 == 0:
                self.budget.check(**located)
            if self.rows_read > _MAX_ROWS_READ:
                raise DocumentError(422, "too_many_rows",
                                    f"This file has more than {_MAX_ROWS_READ} rows, counting empty ones.",
                                    {"limit": _MAX_ROWS_READ, **located})
            if not cells:
                continue
            count += 1
            if count > self.max_rows:
                raise DocumentError(422, "too_many_rows", f"{where} has more than {self.max_rows} rows.",
                                    {"limit": self.max_rows, **located})
            last_column = cells[-1][0]
            if last_column > self.max_columns:
                raise DocumentError(422, "too_many_columns",
                                    f"{where} has a value in column {last_column} (row {number}); "
                                    f"the limit is {self.max_columns} columns.",
                                    {"limit": self.max_columns, "found": last_column, "row": number, **located})
            self.cells += len(cells)
            if self.cells > self.max_cells:
                raise DocumentError(422, "too_many_cells",
                                    f"This file has more than {self.max_cells} non-empty cells.",
                                    {"limit": self.max_cells, "found": self.cells, **located})
            yield number, cells


def _render_rows(rows: Iterable[Row], provenance_base: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """Return (title lines, rows rendered as 'Header: value; ...').

    The header is the first row with two or more values; up to _MAX_TITLE_LINES single-value rows above it are
    the table's title, not the name of column A. A table of single values only (a one-column list) keeps its
    first row as the header, as does one with more leading single values than a title plausibly has."""
    rows = (row for row in rows if row[1])
    leading: list[Row] = []
    for row in rows:
        leading.append(row)
        if len(row[1]) > 1 or len(leading) > _MAX_TITLE_LINES:
            break
    if not leading:
        return [], []
    titles = []
    if len(leading) > 1 and len(leading[-1][1]) > 1:
        titles, leading = [cells[0][1] for _, cells in leading[:-1]], leading[-1:]
    (header_number, header_cells), body = leading[0], leading[1:]
    header = dict(header_cells)
    rendered = [("; ".join(f"{header.get(column) or f'Column {column}'}: {value}" for column, value in cells),
                 {**provenance_base, "row": number}) for number, cells in itertools.chain(body, rows)]
    if not rendered:
        # A table with a header only (no rows after all): keep its content.
        rendered.append(("; ".join(header.values()), {**provenance_base, "row": header_number}))
    return titles, rendered


def _table_section(titles: list[str], rendered: list[tuple[str, dict]], context: str, provenance: dict) -> Section:
    """A title above the header belongs to every row: it joins the context line each chunk starts with."""
    if titles:
        title = " — ".join(titles)
        context = f"{context} — {title}" if context else title
        provenance = {**provenance, "title": title}
    return Section(context=context, provenance=provenance, rows=rendered)


# --- XLSX --------------------------------------------------------------------------

#: a member smaller than this is not checked for its compression ratio (small XML parts compress very well)
_RATIO_CHECKED_FROM = 1024 * 1024
_SHARED_STRINGS = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s/>]")
#: openpyxl's cost to load the shared-string table, per byte of ``sharedStrings.xml`` (worst case, 17-byte strings:
#: 1.5M of them, 25 MB, took 10 s and ~300 MB)
_XLSX_SECONDS_PER_SHARED_STRING_BYTE = 0.4e-6


def _too_large(message: str, **details) -> DocumentError:
    return DocumentError(422, "xlsx_too_large", message, details)


def _check_zip(data: bytes) -> dict[str, zipfile.ZipInfo]:
    """Refuse a zip bomb before openpyxl inflates it, from the zip's directory alone: the sum of the members'
    declared sizes is capped (``zipfile`` stops reading a member at its declared size, so the sizes cannot lie),
    and so is each big member's compression ratio. Worksheet and shared-string XML compresses 5-30x; 5.5M copies
    of ``<si><t>ab</t></si>`` compress 400x, to a 245 KB file under the size cap whose shared strings openpyxl
    loads whole (37 s, 1 GB). Returns the members by name."""
    max_bytes = _limit("KB_MAX_XLSX_UNCOMPRESSED_BYTES", 100 * 1024 * 1024)
    max_ratio = _limit("KB_MAX_XLSX_COMPRESSION_RATIO", 200)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: info for info in archive.infolist()}
    except zipfile.BadZipFile:
        raise DocumentError(422, "file_unreadable", "This XLSX file is not a valid workbook (bad zip).") from None
    total = sum(info.file_size for info in members.values())
    if total > max_bytes:
        raise _too_large(f"This workbook expands to {total} bytes; the limit is {max_bytes}.",
                         uncompressed_bytes=total, limit=max_bytes)
    for info in members.values():
        if info.file_size > _RATIO_CHECKED_FROM and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise _too_large(f"The workbook part '{info.filename}' expands {ratio} times when decompressed (to "
                             f"{info.file_size} bytes); the limit is {max_ratio} times. It looks like a zip bomb.",
                             member=info.filename, uncompressed_bytes=info.file_size,
                             compressed_bytes=info.compress_size, ratio=ratio, limit=max_ratio)
    content_types = members.get("[Content_Types].xml")
    if content_types is None or content_types.file_size > 1024 * 1024 or not any(
            name.endswith(".xml") and "sheet" in name.lower() for name in members):
        raise DocumentError(422, "file_unreadable", "This XLSX file is not a valid workbook (no worksheets).")
    return members


def _shared_strings_member(members: dict[str, zipfile.ZipInfo]) -> zipfile.ZipInfo | None:
    return next((info for name, info in members.items() if name.lower().endswith("sharedstrings.xml")), None)


def _check_shared_strings(data: bytes, member: zipfile.ZipInfo) -> None:
    """openpyxl loads the whole shared-string table when it opens a workbook, ~7 us and ~170 bytes a string. A
    table cannot need more strings than the file may have cells, so more than ``KB_MAX_XLSX_SHARED_STRINGS`` is
    refused; counting them streams the member (bounded by the checks of ``_check_zip``) and keeps nothing."""
    max_strings = _limit("KB_MAX_XLSX_SHARED_STRINGS", 2_000_000)
    count, tail = 0, b""
    with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open(member) as stream:
        while block := stream.read(1024 * 1024):
            # a tag split between two blocks is found in the carried tail + the next block; one wholly inside the
            # tail was counted with the block before
            window = tail + block
            count += len(_SHARED_STRINGS.findall(window)) - len(_SHARED_STRINGS.findall(tail))
            tail = window[-32:]
            if count > max_strings:
                raise _too_large(f"This workbook holds more than {max_strings} shared strings.",
                                 member=member.filename, limit=max_strings)


#: ``[$Rp-421]``: a currency symbol with the locale it is shown in.
_CURRENCY_TAG = re.compile(r"\[\$([^\]-]*)(?:-([0-9A-Fa-f]+))?\]")
#: Separators (thousands, decimal) by a locale id's primary language, for the languages that do not write
#: 1,234.50: Indonesian, German, Italian, Spanish, Dutch, Portuguese, Turkish, Danish, Vietnamese write
#: 1.234,50; French, Swedish, Finnish, Norwegian, Polish, Czech, Russian 1 234,50.
_LOCALE_SEPARATORS = {**dict.fromkeys((0x21, 0x07, 0x10, 0x0A, 0x13, 0x16, 0x1F, 0x06, 0x2A), (".", ",")),
                      **dict.fromkeys((0x0C, 0x1D, 0x0B, 0x14, 0x15, 0x05, 0x19), (" ", ","))}
_CURRENCY_SIGNS = "$€£¥₹₩฿₫₱"
#: Currencies a format may name in quotes ('"Rp"#,##0'); other quoted words ('0 "pcs"') are units, left alone.
_CURRENCY_CODES = {"rp", "idr", "usd", "us$", "sgd", "s$", "myr", "rm", "eur", "gbp", "jpy", "cny", "rmb", "aud",
                   "a$", "hkd", "hk$", "thb", "php", "vnd", "inr", "sar", "aed"}
#: Currencies written with Indonesian separators (Rp25.000,50), as Excel shows them in an Indonesian locale.
_DOT_GROUPED = ("rp", "idr")


def _rounded(value: float, places: int) -> decimal.Decimal:
    """``value`` to ``places`` decimals as Excel shows it: halves away from zero (Python's format rounds them to
    the even digit, and binary floats: 12.5 as "12", 1500.5 as "1500")."""
    exact = decimal.Decimal(repr(value))
    if not exact.is_finite():
        return exact
    return exact.quantize(decimal.Decimal(1).scaleb(-places), decimal.ROUND_HALF_UP, _WIDE)


_WIDE = decimal.Context(prec=400)  # room for any double's digits (1e308 with its decimals)


def _number_shown(number_format: str) -> Callable[[float], str] | None:
    """How a number under ``number_format`` reads: a percentage ("0.00%") or an amount of money ('"Rp"#,##0',
    "[$Rp-421]#,##0.00", accounting "_-[$Rp-421]* #,##0_-", "$#,##0.00"), with its decimals and thousands
    groups, separated as the format's locale id says (else Indonesian for Rp and IDR, English for the rest);
    None for any other format (the number is then written plainly)."""
    section = number_format.split(";")[0]
    literal_free = re.sub(r'"[^"]*"|\\.', "", section)
    if "%" in literal_free:
        decimals = re.search(r"\.(0+)", literal_free)
        places = len(decimals.group(1)) if decimals else 0
        return lambda value: f"{_rounded(value * 100, places):.{places}f}%"
    tagged = _CURRENCY_TAG.search(section)
    quoted = next((m for m in re.finditer(r'"([^"]*)"', section)
                   if m.group(1).strip().lower() in _CURRENCY_CODES or re.search(f"[{_CURRENCY_SIGNS}]", m.group(1))),
                  None)
    if tagged and tagged.group(1).strip():
        symbol, at = tagged.group(1).strip(), tagged.start()
    elif quoted:
        symbol, at = quoted.group(1).strip(), quoted.start()
    elif bare := re.search(f"[{_CURRENCY_SIGNS}]", literal_free):
        symbol, at = bare.group(0), section.find(bare.group(0))
    else:
        return None
    digits = re.sub(r'"[^"]*"|\\.|_.|\*.|\[[^\]]*\]', "", section)
    first_digit = re.search(r"[0#?]", digits)
    if first_digit is None:
        return None
    places = len(m.group(1)) if (m := re.search(r"\.([0#?]+)", digits)) else 0
    grouped = "," in digits
    blanked = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', lambda m: " " * len(m.group(0)), section)  # positions kept
    symbol_first = at < re.search(r"[0#?]", blanked).start()
    thousands, point = (".", ",") if symbol.lower() in _DOT_GROUPED else (",", ".")
    if tagged and tagged.group(2):  # [$€-407]: the locale the sheet shows the amount in (German: 1.234,50 €)
        thousands, point = _LOCALE_SEPARATORS.get(int(tagged.group(2), 16) & 0x3FF, (",", "."))

    def shown(value: float) -> str:
        rounded = _rounded(abs(value), places)
        amount = f"{rounded:{',' if grouped else ''}.{places}f}".translate({ord(","): thousands, ord("."): point})
        sign = "-" if value < 0 and rounded else ""
        return f"{sign}{symbol}{amount}" if symbol_first else f"{sign}{amount} {symbol}"

    return shown


def _number_styles(workbook) -> dict[int, Callable[[float], str]]:
    """Style ids whose number format is a percentage or an amount of money, with how their numbers read
    (``_number_shown``). openpyxl's read-only parser gives each cell's style id but not its format; the style
    table is PRIVATE API (``_cell_styles``, ``_number_formats``), so if it changes, such numbers read as plain
    numbers again."""
    try:
        from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE

        styles, by_format = {}, {}
        for style_id, style in enumerate(workbook._cell_styles):
            format_id = style.numFmtId
            number_format = (BUILTIN_FORMATS.get(format_id, "General") if format_id < BUILTIN_FORMATS_MAX_SIZE
                             else workbook._number_formats[format_id - BUILTIN_FORMATS_MAX_SIZE])
            if number_format not in by_format:
                by_format[number_format] = _number_shown(number_format)
            if by_format[number_format] is not None:
                styles[style_id] = by_format[number_format]
        return styles
    except Exception:  # noqa: BLE001 - an optional nicety: never fail a workbook over it
        return {}


def _sheet_rows(sheet, max_columns: int, number_styles: dict[int, Callable] | None = None) -> Iterator[Row]:
    """The cells a read-only sheet's XML holds, with their coordinates, and nothing else; hidden rows are skipped.

    openpyxl's public ``iter_rows`` pads every row to the sheet's widest column and yields every missing row: one
    value per row in column XFD costs 16,384 cells a row (15k rows: 38 s, +1.7 GB), and a value in row 1,048,576 a
    million empty rows. Its own row parser, which ``iter_rows`` wraps, yields only the cells present. That parser
    is PRIVATE API (openpyxl 3.1: ``WorkSheetParser(...).parse()`` -> (row, [{'column', 'value', ...}])); if it
    is gone, fall back to ``iter_rows`` cut at one column past the cap: slower but bounded, a value there is still
    refused, and values further right go unseen (and hidden rows are read).
    """
    number_styles = number_styles or {}
    try:
        from openpyxl.worksheet._reader import WorkSheetParser

        workbook = sheet.parent
        options = {"data_only": workbook.data_only, "epoch": workbook.epoch, "date_formats": workbook._date_formats,
                   "timedelta_formats": workbook._timedelta_formats}
        source = sheet._get_source()
        try:
            parser = WorkSheetParser(source, sheet._shared_strings, **options)
        except BaseException:
            source.close()
            raise
    except (ImportError, AttributeError, TypeError):
        for number, values in enumerate(sheet.iter_rows(max_col=max_columns + 1, values_only=True), start=1):
            yield number, [(column, text) for column, value in enumerate(values, start=1) if (text := _cell(value))]
        return
    dimensions = getattr(parser, "row_dimensions", None)
    with source:
        for number, cells in parser.parse():
            hidden = False
            if dimensions:
                # a hidden row (an internal column of figures, a cost line) is not meant to be read by customers
                hidden = str(dimensions.get(str(number), {}).get("hidden", "")).lower() in ("1", "true")
                dimensions.clear()  # row heights and styles: unused here, ~300 bytes each in a million blank rows
            if hidden:
                yield number, []
                continue
            yield number, sorted((cell["column"], text) for cell in cells
                                 if (text := _cell(cell["value"], number_styles.get(cell.get("style_id") or 0))))


def parse_xlsx(data: bytes, *, max_seconds: float | None = None) -> list[Section]:
    """One table section per visible sheet with values: hidden and very hidden sheets (cost prices, reseller
    discounts) are skipped, as are hidden rows. ``max_seconds`` bounds the time spent (none by default)."""
    from openpyxl import load_workbook

    budget = _Budget(max_seconds, "xlsx_too_complex", "This workbook", _request_step(max_seconds))
    members = _check_zip(data)
    shared_strings = _shared_strings_member(members)
    if shared_strings is not None:
        budget.check(ahead=shared_strings.file_size * _XLSX_SECONDS_PER_SHARED_STRING_BYTE)
        _check_shared_strings(data, shared_strings)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken workbook
        raise DocumentError(422, "file_unreadable", f"This XLSX file could not be read: {exc}") from None
    limits = _TableLimits(budget)
    sections = []
    try:
        number_styles = _number_styles(workbook)
        for sheet in workbook.worksheets:
            if getattr(sheet, "sheet_state", "visible") != "visible":
                continue
            rows = limits.checked(_sheet_rows(sheet, limits.max_columns, number_styles), sheet=sheet.title)
            titles, rendered = _render_rows(rows, {"sheet": sheet.title})
            if rendered:
                sections.append(_table_section(titles, rendered, f"Sheet: {sheet.title}", {"sheet": sheet.title}))
    except (DocumentError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - a broken sheet XML fails only once its rows are read
        raise DocumentError(422, "file_unreadable", f"This XLSX file could not be read: {exc}") from None
    finally:
        workbook.close()
    return sections


# --- CSV / TSV ---------------------------------------------------------------------

#: Excel's delimiter hint, a first line "sep=;" (written by Excel and tools that target it)
_SEP_HINT = re.compile(r'"?sep=(.)"?[ \t]*(?:\r\n|\r|\n|$)', re.IGNORECASE)


def _parse_delimited(data: bytes, delimiter: str | None) -> list[Section]:
    text, _ = decode_text(data)
    first_row = 1
    if hint := _SEP_HINT.match(text):
        # the hint names the delimiter and is no row of the table; rows keep their line numbers
        delimiter, text, first_row = delimiter or hint.group(1), text[hint.end():], 2
    if delimiter is None:
        sample = text[:20_000]
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = ((number, [(column, cell) for column, value in enumerate(values, start=1) if (cell := _cell(value))])
            for number, values in enumerate(reader, start=first_row))
    try:
        titles, rendered = _render_rows(_TableLimits().checked(rows), {})
    except csv.Error as exc:
        raise DocumentError(422, "file_unreadable", f"This table could not be read: {exc}") from None
    return [_table_section(titles, rendered, "", {})] if rendered else []


def parse_csv(data: bytes) -> list[Section]:
    return _parse_delimited(data, None)


def parse_tsv(data: bytes) -> list[Section]:
    return _parse_delimited(data, "\t")


# --- Markdown and plain text ---------------------------------------------------------

# CommonMark, as far as a heading path needs it: an ATX heading is indented 0-3 spaces and its optional closing
# "#"s follow a space ("## Kursus C#" keeps its "#"); a setext heading is one paragraph line underlined by "=" (h1)
# or "-" (h2); a fence closes only with the character it opened with, at least as many times.
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}(?!.*`)|~{3,})")
#: lines that are no paragraph text, so a "---" under them is a thematic break: list items, quotes, table rows,
#: indented code, headings, fences
_NOT_PARAGRAPH = re.compile(r"^(?: {4}|\t| {0,3}(?:[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|>|\||#|`{3}|~{3}))")


def _front_matter_end(lines: list[str]) -> int:
    """The number of lines of a YAML front matter block ("---" ... "---" or "..."), 0 if there is none: its closing
    "---" under "title: ..." is no setext heading."""
    if lines and lines[0].strip() == "---":
        for index, line in enumerate(lines[1:200], start=1):
            if line.strip() in ("---", "..."):
                return index + 1
    return 0


def split_markdown(text: str) -> list[Section]:
    """One section per heading, carrying the heading path ("Pengiriman > Biaya")."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    buffer: list[str] = []
    fence: str | None = None  # the opening fence's run of ` or ~ while inside a code block
    lone_line = False  # the last line is a paragraph's first line, which a setext underline makes a heading

    def flush():
        body = "\n".join(buffer).strip()
        buffer.clear()
        if body:
            headings = [h for _, h in path]
            sections.append(Section(text=body, context=" > ".join(headings),
                                    provenance={"heading_path": headings} if headings else {}))

    def heading(level: int, title: str):
        nonlocal path
        flush()
        path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, title)]

    lines = text.splitlines()
    front = _front_matter_end(lines)
    buffer.extend(lines[:front])
    after_break = True  # at the start, or after a blank line, a heading or a code block
    for line in lines[front:]:
        if fence is not None:
            buffer.append(line)
            closing = line.strip()
            if closing and set(closing) == {fence[0]} and len(closing) >= len(fence) and len(line) - len(
                    line.lstrip(" ")) < 4:
                fence, after_break = None, True
            continue
        if opening := _FENCE.match(line):
            fence, lone_line = opening.group(1), False
            buffer.append(line)
            continue
        if lone_line and (underline := _SETEXT.match(line)):
            title = buffer.pop().strip()
            heading(1 if underline.group(1)[0] == "=" else 2, title)
            lone_line, after_break = False, True
            continue
        atx = _ATX.match(line)
        if atx and (atx.group(2) or "").strip():
            heading(len(atx.group(1)), atx.group(2).strip())
            lone_line, after_break = False, True
            continue
        blank = not line.strip()
        lone_line = after_break and not blank and not _NOT_PARAGRAPH.match(line) and not _SETEXT.match(line)
        after_break = blank
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
