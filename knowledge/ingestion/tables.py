"""What the table formats (XLSX, CSV, TSV) share: a cell's text as a sheet shows it, the caps
on rows, columns and cells, and rows rendered as "Header: value; Header: value" under the
header row, with a title above it joining each chunk's context line.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Iterable, Iterator

from knowledge.ingestion.common import DocumentError, Section, _Budget, _limit

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
