"""Excel (.xlsx) sink: xlsxwriter in constant-memory mode, typed cells, sheet roll-over.

Speed comes from doing the conversions Polars is good at once per column (cents to dollars,
dates and timestamps to Excel serial numbers) and then feeding xlsxwriter through one typed,
bound write method per column, so the per-cell Python work is a list index and a call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from record_exports.columns import ColumnKind, OutputColumn
from record_exports.sinks.base import EXCEL_MAX_ROWS_PER_SHEET, SinkOptions, SinkReport

SHEET_NAME = "Records"
EXCEL_MAX_TEXT_LENGTH = 32_767
MONEY_FORMAT = "$#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
TIMESTAMP_FORMAT = "yyyy-mm-dd hh:mm:ss"
HEADER_FILL = "#D9D9D9"
WIDTH_SAMPLE_ROWS = 200
MIN_WIDTH = 8
MAX_WIDTH = 60

# Rows converted to Python objects at a time: large enough that the Polars calls are
# amortised, small enough that a 200,000-row batch never exists as 3 million Python objects.
_CHUNK_ROWS = 8_192

_WORKBOOK_OPTIONS: dict[str, Any] = {
    "constant_memory": True,
    # Every value goes through a typed method, but these keep text text even if a future
    # change calls write(): "=1+1" must never become a formula, "007" never a number.
    "strings_to_formulas": False,
    "strings_to_numbers": False,
    "strings_to_urls": False,
    # A million-row sheet with long remarks can pass the 2 GiB zip member limit; Python's
    # zipfile only adds ZIP64 records to members that need them, so small files are unchanged.
    "use_zip64": True,
}

_DAY_US = 86_400_000_000
# Days from Excel's day 0 (1899-12-31) to the Unix epoch (1970-01-01).
_EXCEL_DAY0_TO_UNIX_EPOCH = 25_568
# Serial 60 is Excel's phantom 1900-02-29: every later serial is one day higher.
_EXCEL_LEAP_BUG_SERIAL = 59

_FRAME_DTYPES: dict[ColumnKind, pl.DataType] = {
    ColumnKind.TEXT: pl.String(),
    ColumnKind.INTEGER: pl.Int64(),
    ColumnKind.MONEY: pl.Int64(),
    ColumnKind.DATE: pl.Date(),
    ColumnKind.TIMESTAMP: pl.Datetime("us", "UTC"),
}

_WriteMethod = Callable[[int, int, Any, Format | None], int]


def _excel_serial_days(days_since_unix_epoch: pl.Expr) -> pl.Expr:
    """Whole Excel serial days, matching xlsxwriter's write_datetime (1900 leap-year bug too)."""
    serial = days_since_unix_epoch + _EXCEL_DAY0_TO_UNIX_EPOCH
    return pl.when(serial > _EXCEL_LEAP_BUG_SERIAL).then(serial + 1).otherwise(serial)


def _cell_expression(output: OutputColumn) -> pl.Expr:
    """The column as the value Excel stores, computed once per chunk instead of once per cell.

    An Excel date is a number with a date format, so dates and timestamps become serial
    numbers here and are written with write_number: the cell XML is exactly what
    write_datetime produces, without a Python datetime object and conversion per cell.
    Timestamps are UTC (Excel has no time zones).
    """
    col = pl.col(output.name)
    match output.kind:
        case ColumnKind.MONEY:
            # The only float in the export: Excel stores every number as a double anyway,
            # and cents / 100 is the double nearest to the exact dollar amount.
            return col / 100
        case ColumnKind.DATE:
            return _excel_serial_days(col.cast(pl.Int32).cast(pl.Int64))
        case ColumnKind.TIMESTAMP:
            micros = col.dt.epoch("us")
            days = micros // _DAY_US
            return _excel_serial_days(days) + (micros - days * _DAY_US) / _DAY_US
        case ColumnKind.TEXT:
            # Like xlsxwriter's own write(): an empty text is an empty cell, since Excel
            # shows no difference and an empty in-line string is just noise in the file.
            return pl.when(col != "").then(col)
        case ColumnKind.INTEGER:
            return col


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


def _typed_writers(sheet: Worksheet) -> tuple[_WriteMethod, _WriteMethod]:
    """The sheet's write_string and write_number, without their A1-notation wrapper if possible.

    The public methods are wrapped by a decorator that tries int() on the row to detect
    "A1" notation; we always pass ints, and skipping that wrapper is about 8% of the
    whole export. The undecorated methods are what xlsxwriter's own write() calls and
    return the same codes; if a later xlsxwriter drops them the public ones are used.
    """
    write_string = getattr(sheet, "_write_string", None) or sheet.write_string
    write_number = getattr(sheet, "_write_number", None) or sheet.write_number
    return write_string, write_number


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
        self._workbook = xlsxwriter.Workbook(str(path), _WORKBOOK_OPTIONS)
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
        self._cell_formats = [number_formats[output.kind] for output in options.columns]
        self._is_text = [output.kind is ColumnKind.TEXT for output in options.columns]
        self._expressions = [_cell_expression(output) for output in options.columns]
        self._widths: list[int] | None = None
        self._sheet: Worksheet | None = None
        self._sheets: list[Worksheet] = []
        self._sheet_rows = 0
        self._truncated_cells = 0
        # "open" until close() has written the file or abort() has released the temp files.
        self._state = "open"

    def write(self, batch: pl.DataFrame) -> None:
        """Append the batch's rows after the previous ones, starting new sheets as they fill."""
        if self._state != "open":
            raise RuntimeError(f"XlsxSink.write called on a {self._state} sink")
        self._check_batch(batch)
        if self._widths is None and batch.height:
            self._widths = _column_widths(self._columns, batch.head(WIDTH_SAMPLE_ROWS))
        for chunk in batch.iter_slices(_CHUNK_ROWS):
            values = [series.to_list() for series in chunk.select(self._expressions)]
            start, end = 0, chunk.height
            while start < end:
                if self._sheet is None or self._sheet_rows >= self._rows_per_sheet:
                    self._start_sheet()
                stop = min(end, start + self._rows_per_sheet - self._sheet_rows)
                self._write_rows(values, start, stop)
                start = stop

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
        report = SinkReport(truncated_cells=self._truncated_cells, sheets=len(self._sheets))
        if self._truncated_cells:
            report.warnings.append(
                f"{self._truncated_cells} text cells were longer than Excel's "
                f"{EXCEL_MAX_TEXT_LENGTH:,}-character limit and were cut"
            )
        return report

    def abort(self) -> None:
        """Drop the workbook without building it and remove xlsxwriter's per-sheet temp files.

        In constant_memory mode every sheet keeps an open temp file of row data that only a
        successful Workbook.close() consumes and deletes; the output file itself is created
        only inside close(), so after a failed write there is nothing else to release. Safe
        after a close() that raised part-way: already-removed temp files are skipped.
        """
        if self._state != "open":
            return
        self._state = "aborted"
        for sheet in self._sheets:
            handle = sheet.row_data_fh
            if handle is not None and not handle.closed:
                handle.close()
            filename = sheet.row_data_filename
            if filename:
                Path(filename).unlink(missing_ok=True)

    def _check_batch(self, batch: pl.DataFrame) -> None:
        """Refuse a batch that is not the agreed shape rather than write wrong cells."""
        if batch.columns != self._names:
            raise ValueError(f"batch columns {batch.columns} are not the export's {self._names}")
        for output, dtype in zip(self._columns, batch.dtypes, strict=True):
            if dtype != _FRAME_DTYPES[output.kind]:
                raise ValueError(
                    f"column {output.name!r} is {dtype}, expected {_FRAME_DTYPES[output.kind]}"
                )

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
        for col, output in enumerate(self._columns):
            self._check(sheet.write_string(0, col, output.title, self._header_format), 0, col)
        sheet.freeze_panes(1, 0)
        widths = self._widths or _column_widths(self._columns, pl.DataFrame())
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)

    def _finish_sheet(self) -> None:
        """Set the autofilter now that the sheet's last row is known (allowed until close)."""
        if self._sheet is not None:
            last_col = len(self._columns) - 1
            self._sheet.autofilter(0, 0, self._sheet_rows, last_col)

    def _write_rows(self, values: list[list[Any]], start: int, stop: int) -> None:
        """Write rows start..stop of a converted chunk below the current sheet's last row.

        The hot loop: the write method, format and values list are looked up once per
        column, and nulls are skipped (an empty cell is a cell never written).
        """
        sheet = self._sheet
        if sheet is None:
            raise RuntimeError("no open sheet")
        write_string, write_number = _typed_writers(sheet)
        typed = [write_string if text else write_number for text in self._is_text]
        plan = list(zip(typed, range(len(values)), self._cell_formats, values, strict=True))
        row = self._sheet_rows + 1
        for index in range(start, stop):
            for write, col, cell_format, column_values in plan:
                value = column_values[index]
                if value is not None and (code := write(row, col, value, cell_format)):
                    self._check(code, row, col)
            row += 1
        self._sheet_rows += stop - start

    def _check(self, code: int, row: int, col: int) -> None:
        """Act on a non-zero xlsxwriter return code: count a cut text, fail on anything else.

        xlsxwriter returns -2 from write_string when it cut a text to Excel's 32,767
        UTF-16 units (so a text of astral characters such as emoji is cut a little
        shorter in characters); any other code means the cell was not written.
        """
        if code == 0:
            return
        if code == -2 and row > 0 and self._is_text[col]:
            self._truncated_cells += 1
            return
        sheet = self._sheet.name if self._sheet is not None else "?"
        raise RuntimeError(
            f"xlsxwriter refused the cell at row {row + 1}, column {col + 1} of sheet "
            f"{sheet!r} (code {code}); stopping rather than dropping it"
        )
