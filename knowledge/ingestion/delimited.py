"""CSV and TSV: one table section, the delimiter taken from Excel's "sep=" hint, else sniffed
(CSV) or a tab (TSV).
"""

from __future__ import annotations

import csv
import io
import re

from knowledge.ingestion.common import DocumentError, Section
from knowledge.ingestion.decoding import decode_text
from knowledge.ingestion.tables import _cell, _render_rows, _table_section, _TableLimits

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
