"""Many small one-sheet workbooks at once, without xlsxwriter's cost per workbook.

A daily file holds one account's sales of one day, typically a few hundred rows, and
xlsxwriter spends 30-40 ms on every workbook whatever its size (formats, styles, theme,
temp files, nine zip members): 14,600 daily workbooks for a year of 20 accounts would take
longer than the rows in them. So xlsxwriter writes one template workbook per run, through
`XlsxSink` with no rows, and each small workbook is that template with its own rows put in:

- `xl/worksheets/sheet1.xml`: the template's sheet with this workbook's rows after the
  header, its dimension and autofilter range, and its column widths;
- `xl/workbook.xml`: the template's, with the autofilter's defined range;
- every other part (styles, theme, content types, properties): the template's bytes.

The rows are the SpreadsheetML `xlsx_cells` builds for `XlsxSink` (text always inline text,
never a formula; texts cut to Excel's 32,767-unit limit), built for all the workbooks of
a frame in one vectorized pass, numbered per workbook. Column widths follow `XlsxSink`'s
rule (header and the first rows), vectorized too. A workbook with more rows than a sheet
holds is not built here: `XlsxSink` rolls it over to more sheets.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from xlsxwriter.utility import xl_col_to_name

from record_exports.atomic import partial_file
from record_exports.columns import ColumnKind, OutputColumn
from record_exports.sinks.base import SinkOptions
from record_exports.sinks.text import StringRuns
from record_exports.sinks.xlsx import (
    DATE_FORMAT,
    MAX_WIDTH,
    MIN_WIDTH,
    TIMESTAMP_FORMAT,
    WIDTH_SAMPLE_ROWS,
    XlsxSink,
)
from record_exports.sinks.xlsx_cells import cut_overlong_text, rows_xml_by_group
from record_exports.sinks.zip_members import archive, member

TEMPLATE_NAME = "template.xlsx"
SHEET_PART = "xl/worksheets/sheet1.xml"
WORKBOOK_PART = "xl/workbook.xml"
FILLED_PARTS = (SHEET_PART, WORKBOOK_PART)
# Where Python's str.splitlines() breaks lines; XlsxSink sizes text columns by the longest line.
_BREAK_CHARACTERS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
_LINE_BREAKS = "\r\n|[" + "".join(_BREAK_CHARACTERS) + "]"
# zlib level of each workbook's own sheet: level 1 deflates sheet XML twice as fast as
# xlsxwriter's 6 (71 against 35 MB/s of CPU here) for files about 19 % larger; the sheet is
# most of a workbook's bytes and of its cost.
SHEET_LEVEL = 1
# xlsxwriter's conversion of a width in characters to the <col> element (Calibri 11).
_MAX_DIGIT_WIDTH = 7
_CELL_PADDING = 5


class TemplateMismatch(RuntimeError):
    """xlsxwriter's template workbook no longer has the shape this module fills in."""


def _decimal_digits(magnitude: pl.Series) -> pl.Series:
    """Digits of non-negative integers, by comparisons (no text made)."""
    digits = pl.Series(magnitude.len() * [1], dtype=pl.Int64)
    for power in range(1, 19):
        digits = digits + (magnitude >= 10**power).cast(pl.Int64)
    return digits


def _longest_line(texts: pl.Series) -> pl.Series:
    """Characters of each text's longest line; only texts with a line break are split."""
    lengths = texts.str.len_chars().cast(pl.Int64)
    broken = texts.str.contains_any(_BREAK_CHARACTERS).fill_null(False)
    if not broken.any():
        return lengths
    positions = broken.arg_true()
    lines = texts.gather(positions).str.replace_all(_LINE_BREAKS, "\n").str.split("\n")
    longest = lines.list.eval(pl.element().str.len_chars()).list.max().cast(pl.Int64)
    return lengths.scatter(positions, longest)


def _where_set(values: pl.Series, width: int) -> pl.Series:
    """`width` for each value, null for a null."""
    set_ = values.is_not_null()
    return pl.select(pl.when(set_).then(pl.lit(width, pl.Int64))).to_series()


def display_width(output: OutputColumn, values: pl.Series) -> pl.Series:
    """Characters Excel shows for each cell of a column (null for a null), as XlsxSink measures
    a sampled cell: the longest line of a text, `$1,234.56` for money, the format's length for
    dates and timestamps, the digits of an integer."""
    match output.kind:
        case ColumnKind.TEXT:
            return _longest_line(values)
        case ColumnKind.MONEY:
            digits = _decimal_digits(values.abs() // 100)
            return 1 + (values < 0).cast(pl.Int64) + digits + (digits - 1) // 3 + 3
        case ColumnKind.DATE:
            return _where_set(values, len(DATE_FORMAT))
        case ColumnKind.TIMESTAMP:
            return _where_set(values, len(TIMESTAMP_FORMAT))
        case ColumnKind.INTEGER:
            return (values < 0).cast(pl.Int64) + _decimal_digits(values.abs())


def widths_by_group(
    frame: pl.DataFrame, columns: Sequence[OutputColumn], group: str
) -> list[tuple[int, ...]]:
    """Column widths of each group's workbook, in group order: the widest of the title and the
    group's first `WIDTH_SAMPLE_ROWS` cells, plus two for the filter button, within limits.

    A number's width grows with its size on each side of zero, so only each group's least
    and greatest value are measured; texts are measured one by one."""
    sample = frame.filter(pl.int_range(pl.len()).over(group) < WIDTH_SAMPLE_ROWS)
    values = pl.DataFrame(
        [sample.get_column(group)]
        + [
            _longest_line(sample.get_column(c.name)).alias(c.name)
            if c.kind is ColumnKind.TEXT
            else sample.get_column(c.name)
            for c in columns
        ]
    )
    numeric = {ColumnKind.MONEY, ColumnKind.INTEGER}
    extremes = values.group_by(group, maintain_order=True).agg(
        *(pl.col(c.name).max().alias(f"{c.name}:max") for c in columns),
        *(pl.col(c.name).min().alias(f"{c.name}:min") for c in columns if c.kind in numeric),
    )
    widths = []
    for c in columns:
        measured = [extremes.get_column(f"{c.name}:max")]
        if c.kind is not ColumnKind.TEXT:
            measured = [display_width(c, measured[0])]
        if c.kind in numeric:
            measured.append(display_width(c, extremes.get_column(f"{c.name}:min")))
        widest = pl.max_horizontal(*measured, pl.lit(len(c.title), pl.Int64))
        widths.append(pl.select((widest + 2).clip(MIN_WIDTH, MAX_WIDTH)).to_series().to_list())
    return list(zip(*widths, strict=True))


def cols_xml(widths: Sequence[int]) -> bytes:
    """The `<cols>` element xlsxwriter writes for `set_column(i, i, width)` on every column:
    adjacent columns of the same width share one `<col>`."""
    parts = []
    start = 0
    for index in range(1, len(widths) + 1):
        if index < len(widths) and widths[index] == widths[start]:
            continue
        pixels = int(widths[start] * _MAX_DIGIT_WIDTH + 0.5) + _CELL_PADDING
        characters = (pixels * 256 // _MAX_DIGIT_WIDTH) / 256.0
        parts.append(
            f'<col min="{start + 1}" max="{index}" width="{characters:.16g}" customWidth="1"/>'
        )
        start = index
    return ("<cols>" + "".join(parts) + "</cols>").encode()


def _split_once(data: bytes, marker: bytes, part: str) -> tuple[bytes, bytes]:
    if data.count(marker) != 1:
        raise TemplateMismatch(f"{part} of xlsxwriter's template lacks a single {marker!r}")
    before, after = data.split(marker)
    return before, after


@dataclass(frozen=True)
class WorkbookRows:
    """One workbook's share of rows built for many: its `<row>` elements, how many, its
    column widths, and how many of its text cells were cut to Excel's limit."""

    xml: memoryview
    rows: int
    widths: tuple[int, ...]
    truncated_cells: int


class SmallWorkbooks:
    """Builds one-sheet workbooks of the given columns, many per call; see the module doc."""

    def __init__(self, options: SinkOptions, scratch_folder: Path) -> None:
        """`scratch_folder`: where the template is written and read back, as a partial of
        `template.xlsx` (removed at once; swept with the folder's partials after a kill)."""
        self._columns = options.columns
        self._text_columns = [c.name for c in options.columns if c.kind is ColumnKind.TEXT]
        self._last_letter = xl_col_to_name(len(options.columns) - 1)
        with partial_file(scratch_folder / TEMPLATE_NAME) as path:
            sink = XlsxSink(path, options)
            self._cells = sink.row_cells
            sink.close()
            with zipfile.ZipFile(path) as template:
                infos = template.infolist()
                parts = {info.filename: template.read(info) for info in infos}
        # Members every workbook shares are deflated once; None marks the two it fills in.
        self._members = [
            (info, None if info.filename in FILLED_PARTS else member(info, parts[info.filename]))
            for info in infos
        ]
        self._split_sheet(parts[SHEET_PART])
        self._workbook_before, self._workbook_after = _split_once(
            parts[WORKBOOK_PART], self._range(1, absolute=True), WORKBOOK_PART
        )

    def _split_sheet(self, sheet: bytes) -> None:
        """The template sheet around what each workbook fills in."""
        header_ref = b'ref="' + self._range(1) + b'"'
        head, rest = _split_once(sheet, b"<dimension " + header_ref + b"/>", SHEET_PART)
        views, rest = _split_once(rest, b"<cols>", SHEET_PART)
        _, rest = _split_once(rest, b"</cols>", SHEET_PART)
        header_row, rest = _split_once(rest, b"</sheetData>", SHEET_PART)
        between, tail = _split_once(rest, b"<autoFilter " + header_ref + b"/>", SHEET_PART)
        self._sheet_head, self._sheet_views = head, views
        self._header_row, self._sheet_between, self._sheet_tail = header_row, between, tail

    def prepare(
        self, frame: pl.DataFrame, group: str, lengths: Sequence[int]
    ) -> list[WorkbookRows]:
        """The rows of one workbook per group of `frame`'s rows, built together: groups are
        contiguous, labelled by the `group` column, `lengths` long, in order."""
        widths = widths_by_group(frame, self._columns, group)
        cut, truncated = cut_overlong_text(frame, self._text_columns)
        cut_per_row = self._cut_cells_per_row(frame, cut) if truncated else None
        rows = StringRuns(rows_xml_by_group(cut, self._cells, group))
        prepared = []
        first = 0
        for length, group_widths in zip(lengths, widths, strict=True):
            cut_cells = 0 if cut_per_row is None else int(cut_per_row.slice(first, length).sum())
            prepared.append(WorkbookRows(rows.run(first, length), length, group_widths, cut_cells))
            first += length
        return prepared

    def _cut_cells_per_row(self, before: pl.DataFrame, after: pl.DataFrame) -> pl.Series:
        changed = [
            (before.get_column(name) != after.get_column(name)).fill_null(False).cast(pl.Int64)
            for name in self._text_columns
        ]
        return pl.DataFrame(changed).sum_horizontal()

    def _range(self, last_row: int, absolute: bool = False) -> bytes:
        """The sheet's cell range as xlsxwriter writes it: `A1:P7` (`$A$1:$P$7` in defined
        names), a single cell as `A1`."""
        mark = "$" if absolute else ""
        first = f"{mark}A{mark}1"
        if self._last_letter == "A" and last_row == 1:
            return first.encode()
        return f"{first}:{mark}{self._last_letter}{mark}{last_row}".encode()

    def workbook(self, rows: WorkbookRows) -> bytes:
        """The .xlsx file of prepared rows (safe to call from several threads at once)."""
        last_row = rows.rows + 1
        cell_range = b'ref="' + self._range(last_row) + b'"'
        sheet = b"".join(
            [
                self._sheet_head,
                b"<dimension " + cell_range + b"/>",
                self._sheet_views,
                cols_xml(rows.widths),
                self._header_row,
                rows.xml,
                b"</sheetData>",
                self._sheet_between,
                b"<autoFilter " + cell_range + b"/>",
                self._sheet_tail,
            ]
        )
        workbook = b"".join(
            [
                self._workbook_before,
                self._range(last_row, absolute=True),
                self._workbook_after,
            ]
        )
        own = {
            SHEET_PART: lambda info: member(info, sheet, SHEET_LEVEL),
            WORKBOOK_PART: lambda info: member(info, workbook),
        }
        return archive(
            [
                own[info.filename](info) if shared is None else shared
                for info, shared in self._members
            ]
        )
