"""Excel (.xlsx) sink: xlsxwriter in constant-memory mode, typed cells, sheet roll-over.

xlsxwriter owns the workbook: styles, column widths, frozen header, autofilter, the zip.
The rows themselves are built by Polars, a column at a time (`xlsx_cells`), and appended
to the row-data file xlsxwriter keeps per sheet in constant-memory mode, where its own
per-cell writes would have put them, through `xlsx_internals.SheetRowData`, the one place
that touches xlsxwriter's private names. That skips xlsxwriter's Python per cell, about 5 µs.

xlsxwriter's temporary files (each sheet's row data in constant-memory mode, 0.3-0.8 GB
for 1-2M rows, and the XML parts it zips in `close`) go to the workbook's scratch folder,
`<file>.d/` beside the file being written (`atomic.scratch_folder_for`), never to the system
temp folder: `close` and `abort` delete it, and after a kill the next export into that
folder sweeps it with the file's partial.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from record_exports.atomic import remove_folder, scratch_folder_for
from record_exports.columns import ColumnKind, OutputColumn
from record_exports.sinks.base import EXCEL_MAX_ROWS_PER_SHEET, SinkOptions, SinkReport
from record_exports.sinks.xlsx_cells import (
    EXCEL_MAX_TEXT_LENGTH,
    CellStyle,
    cell,
    column_styles,
    cut_overlong_text,
    rows_xml,
    text_cell,
)
from record_exports.sinks.xlsx_internals import SheetRowData

SHEET_NAME = "Records"
MONEY_FORMAT = "$#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
TIMESTAMP_FORMAT = "yyyy-mm-dd hh:mm:ss"
HEADER_FILL = "#D9D9D9"
WIDTH_SAMPLE_ROWS = 200
MIN_WIDTH = 8
MAX_WIDTH = 60

# Rows turned into XML at a time. Polars holds several times the XML (1.5 MB for the
# default columns) while building it: 8,192 rows cost 40 MB more peak RSS, for 10 % speed.
_CHUNK_ROWS = 2_048

_WORKBOOK_OPTIONS: dict[str, Any] = {
    "constant_memory": True,
    # Cells are built by xlsx_cells, not write(); should anything ever go through write(),
    # "=1+1" must still never become a formula, "007" never a number.
    "strings_to_formulas": False,
    "strings_to_numbers": False,
    "strings_to_urls": False,
    # A million-row sheet with long remarks can pass the 2 GiB zip member limit; Python's
    # zipfile only adds ZIP64 records to members that need them, so small files are unchanged.
    "use_zip64": True,
}


def _display_width(kind: ColumnKind, value: Any) -> int:
    """Characters Excel shows for a sampled cell; only used to size columns."""
    match kind:
        case ColumnKind.TEXT:
            return max((len(line) for line in str(value).splitlines()), default=0)
        case ColumnKind.MONEY:
            return len(f"${value / 100:,.2f}")
        case ColumnKind.DATE:
            return len(DATE_FORMAT)
        case ColumnKind.TIMESTAMP:
            return len(TIMESTAMP_FORMAT)
        case ColumnKind.INTEGER:
            return len(str(value))


def _column_widths(columns: Sequence[OutputColumn], sample: pl.DataFrame) -> list[int]:
    """One width per column from its title and a sample, so no per-cell measuring is needed.

    Two characters of padding leave room for the autofilter button.
    """
    widths = []
    for output in columns:
        values = sample.get_column(output.name).drop_nulls().to_list() if sample.height else []
        longest = max(
            [len(output.title), *(_display_width(output.kind, value) for value in values)]
        )
        widths.append(min(MAX_WIDTH, max(MIN_WIDTH, longest + 2)))
    return widths


class XlsxSink:
    """Writes batches to an .xlsx workbook; see the module docstring for the speed approach."""

    def __init__(self, path: Path, options: SinkOptions) -> None:
        if not 1 <= options.rows_per_sheet <= EXCEL_MAX_ROWS_PER_SHEET:
            raise ValueError(
                f"rows_per_sheet must be between 1 and {EXCEL_MAX_ROWS_PER_SHEET}, "
                f"got {options.rows_per_sheet}"
            )
        if not options.columns:
            raise ValueError("an Excel export needs at least one column")
        self._columns = options.columns
        self._names = [output.name for output in options.columns]
        self._rows_per_sheet = options.rows_per_sheet
        self._scratch = scratch_folder_for(path)
        self._scratch.mkdir()
        self._workbook = xlsxwriter.Workbook(
            str(path), {**_WORKBOOK_OPTIONS, "tmpdir": str(self._scratch)}
        )
        self._header_format = self._workbook.add_format(
            {"bold": True, "bg_color": HEADER_FILL, "pattern": 1}
        )
        number_formats: dict[ColumnKind, Format | None] = {
            ColumnKind.TEXT: None,
            ColumnKind.INTEGER: None,
            ColumnKind.MONEY: self._workbook.add_format({"num_format": MONEY_FORMAT}),
            ColumnKind.DATE: self._workbook.add_format({"num_format": DATE_FORMAT}),
            ColumnKind.TIMESTAMP: self._workbook.add_format({"num_format": TIMESTAMP_FORMAT}),
        }
        # Registered in the order xlsxwriter's own writes would use them: header, then the
        # columns left to right.
        header_xf = SheetRowData.style_index(self._header_format)
        styles = column_styles(
            [SheetRowData.style_index(number_formats[output.kind]) for output in self._columns]
        )
        self._cells = [
            cell(output, style) for output, style in zip(self._columns, styles, strict=True)
        ]
        self._header_cells = [
            text_cell(pl.col(output.name), CellStyle(style.letter, header_xf))
            for output, style in zip(self._columns, styles, strict=True)
        ]
        self._text_columns = [
            output.name for output in options.columns if output.kind is ColumnKind.TEXT
        ]
        self._last_col = len(options.columns) - 1
        self._widths: list[int] | None = None
        self._sheet: Worksheet | None = None
        self._sheets: list[Worksheet] = []
        self._sheet_rows = 0
        self._truncated_cells = 0
        # "open" until close() has written the file or abort() has released the temp files.
        self._state = "open"

    @property
    def row_cells(self) -> list[pl.Expr]:
        """The cell expressions of a data row (`xlsx_cells.cell` per column, with this
        workbook's style indexes)."""
        return list(self._cells)

    def write(self, batch: pl.DataFrame) -> None:
        """Append the batch's rows after the previous ones, starting new sheets as they fill."""
        if self._state != "open":
            raise RuntimeError(f"XlsxSink.write called on a {self._state} sink")
        self._check_batch(batch)
        if self._widths is None and batch.height:
            self._widths = _column_widths(self._columns, batch.head(WIDTH_SAMPLE_ROWS))
        for chunk in batch.iter_slices(_CHUNK_ROWS):
            chunk, cut = cut_overlong_text(chunk, self._text_columns)
            self._truncated_cells += cut
            start = 0
            while start < chunk.height:
                if self._sheet is None or self._sheet_rows >= self._rows_per_sheet:
                    self._start_sheet()
                take = min(chunk.height - start, self._rows_per_sheet - self._sheet_rows)
                self._append_rows(chunk.slice(start, take), self._cells, self._sheet_rows + 1)
                self._sheet_rows += take
                start += take

    def close(self) -> SinkReport:
        """Finish the last sheet and write the file (xlsxwriter builds the zip only now)."""
        if self._state != "open":
            raise RuntimeError(f"XlsxSink.close called on a {self._state} sink")
        if self._sheet is None:
            # An export with no rows still gets its sheet with a header.
            self._start_sheet()
        self._finish_sheet()
        self._workbook.close()
        self._state = "closed"
        remove_folder(self._scratch)
        report = SinkReport(truncated_cells=self._truncated_cells, sheets=len(self._sheets))
        if self._truncated_cells:
            report.warnings.append(
                f"{self._truncated_cells} text cells were longer than Excel's "
                f"{EXCEL_MAX_TEXT_LENGTH:,}-character limit and were cut"
            )
        return report

    def abort(self) -> None:
        """Drop the workbook without building it and delete its scratch folder.

        In constant_memory mode every sheet keeps an open temp file of row data that only a
        successful Workbook.close() consumes and deletes; a close() that failed part-way (a
        full disk) may also leave some of the XML parts it was zipping. The output file
        itself is created only inside close(), and the caller deletes it. Safe after a
        close() that raised part-way: already-removed files are skipped.
        """
        if self._state != "open":
            return
        self._state = "aborted"
        for sheet in self._sheets:
            SheetRowData(sheet).discard()
        remove_folder(self._scratch)

    def _check_batch(self, batch: pl.DataFrame) -> None:
        """Refuse a batch that is not the agreed shape rather than write wrong cells."""
        if batch.columns != self._names:
            raise ValueError(f"batch columns {batch.columns} are not the export's {self._names}")
        for output, dtype in zip(self._columns, batch.dtypes, strict=True):
            if dtype != output.dtype:
                raise ValueError(f"column {output.name!r} is {dtype}, expected {output.dtype}")

    def _start_sheet(self) -> None:
        """Finish the current sheet, if any, and open the next with header, freeze and widths."""
        if self._sheet is not None:
            self._finish_sheet()
        number = len(self._sheets) + 1
        name = SHEET_NAME if number == 1 else f"{SHEET_NAME} ({number})"
        sheet = self._workbook.add_worksheet(name)
        self._sheets.append(sheet)
        self._sheet = sheet
        self._sheet_rows = 0
        titles = pl.DataFrame({output.name: [output.title] for output in self._columns})
        self._append_rows(titles, self._header_cells, 0)
        sheet.freeze_panes(1, 0)
        widths = self._widths or _column_widths(self._columns, pl.DataFrame())
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)

    def _finish_sheet(self) -> None:
        """Set the autofilter now that the sheet's last row is known (allowed until close)."""
        if self._sheet is not None:
            self._sheet.autofilter(0, 0, self._sheet_rows, self._last_col)

    def _append_rows(self, frame: pl.DataFrame, cells: list[pl.Expr], first_row: int) -> None:
        """Append `frame` as rows `first_row`... (0-based) of the current sheet's row data."""
        if self._sheet is None:
            raise RuntimeError("no open sheet")
        rows = rows_xml(frame, cells, first_row)
        SheetRowData(self._sheet).append(rows, first_row, frame.height, self._last_col)
