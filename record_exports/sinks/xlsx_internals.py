"""The xlsxwriter internals the Excel sink relies on, in one small class.

xlsxwriter has no public call to append rows that were built elsewhere. In constant-memory
mode each worksheet keeps its rows' XML in a temporary file, `Worksheet.row_data_fh` (a text
file whose `.buffer` takes bytes), named `Worksheet.row_data_filename`; its own writes first
record the sheet's extent with `Worksheet._check_dimensions` (which refuses a row past Excel's
limit), and a cell's style is `Format._get_xf_index()`, which also marks the format as used.
Those four names are all the sink touches; xlsxwriter is pinned, and
tests/record_exports/sinks/test_xlsx_internals.py probes each by name.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from record_exports.sinks.text import write_string_values


class SheetRowData:
    """A constant-memory worksheet's row data, appended to directly."""

    def __init__(self, sheet: Worksheet) -> None:
        self.sheet = sheet

    @staticmethod
    def style_index(cell_format: Format | None) -> int | None:
        """The format's index in the workbook's styles, registering it as used (as a write
        with the format would)."""
        return None if cell_format is None else int(cell_format._get_xf_index())

    def append(self, rows: pl.Series, first_row: int, row_count: int, last_col: int) -> None:
        """Append `rows`, the XML of `row_count` rows numbered from `first_row` (0-based),
        after recording the sheet's extent as xlsxwriter's own writes would."""
        last_row = first_row + row_count - 1
        for row, col in ((first_row, 0), (last_row, last_col)):
            if self.sheet._check_dimensions(row, col):
                raise RuntimeError(
                    f"row {row + 1}, column {col + 1} does not fit sheet {self.sheet.name!r}"
                )
        data = self.sheet.row_data_fh
        # Text xlsxwriter may have buffered goes first; the rows follow as UTF-8 bytes.
        data.flush()
        write_string_values(data.buffer, rows)

    def discard(self) -> None:
        """Close and delete the row-data file, which only a successful `Workbook.close()`
        would have consumed; a file already gone is skipped."""
        handle = self.sheet.row_data_fh
        if handle is not None and not handle.closed:
            handle.close()
        filename = self.sheet.row_data_filename
        if filename:
            Path(filename).unlink(missing_ok=True)
