"""XLSX: one table section per visible sheet, read by openpyxl in read-only mode after the zip's
directory is checked (declared sizes, compression ratios, the shared-string count: no zip bomb
is inflated), with numbers shown as their number format shows them ("15%", "Rp25.000").
"""

from __future__ import annotations

import decimal
import io
import re
import zipfile
from collections.abc import Callable, Iterator

from knowledge.ingestion.common import DocumentError, Section, _Budget, _limit, _request_step
from knowledge.ingestion.tables import Row, _cell, _render_rows, _table_section, _TableLimits

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
