"""Worksheet rows as SpreadsheetML, built by Polars a whole column at a time.

xlsxwriter spends about 5 µs of Python per cell building each cell's XML. Here every
column becomes its cells' XML in one vectorized expression and every row one string, in
exactly the form xlsxwriter writes in constant-memory mode:

    <row r="2"><c r="A2" t="inlineStr"><is><t>text</t></is></c><c r="B2" s="2"><v>1.5</v></c></row>

Text gets xlsxwriter's escaping, in its order: a literal `_xHHHH_` gets its underscore
escaped (`_x005F_xHHHH_`), control characters become `_xHHHH_`, then `&`, `<` and `>`
become entities, and a leading or trailing space asks for `xml:space="preserve"`. Unlike
xlsxwriter's own `write_string`, a text that looks like `<r>...</r>` is escaped like any
other instead of being copied into the file as rich-text markup (which let a record's text
break the workbook's XML). A null or empty text and a null number are cells never written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from xlsxwriter.utility import xl_col_to_name

from record_exports.columns import ColumnKind, OutputColumn
from record_exports.money import dollars_text

ROW_NUMBER = "__excel_row"
EXCEL_MAX_TEXT_LENGTH = 32_767

_DAY_US = 86_400_000_000
# Days from Excel's day 0 (1899-12-31) to the Unix epoch (1970-01-01).
_EXCEL_DAY0_TO_UNIX_EPOCH = 25_568
# Serial 60 is Excel's phantom 1900-02-29: every later serial is one day higher.
_EXCEL_LEAP_BUG_SERIAL = 59

_LITERAL_ESCAPE = r"(_x[0-9a-fA-F]{4}_)"
_CONTROL_CHARACTERS = [chr(code) for code in (*range(0x00, 0x09), *range(0x0B, 0x20))]
_REPLACED = [*_CONTROL_CHARACTERS, "\ufffe", "\uffff", "&", "<", ">"]
_REPLACEMENTS = [
    *(f"_x{ord(char):04X}_" for char in _CONTROL_CHARACTERS),
    "_xFFFE_",
    "_xFFFF_",
    "&amp;",
    "&lt;",
    "&gt;",
]


@dataclass(frozen=True)
class CellStyle:
    """Where a column's cells go and the workbook's index of their format (None: none)."""

    letter: str
    xf_index: int | None


def excel_serial_days(days_since_unix_epoch: pl.Expr) -> pl.Expr:
    """Whole Excel serial days, matching xlsxwriter's write_datetime (1900 leap-year bug too)."""
    serial = days_since_unix_epoch + _EXCEL_DAY0_TO_UNIX_EPOCH
    return pl.when(serial > _EXCEL_LEAP_BUG_SERIAL).then(serial + 1).otherwise(serial)


def number_text(output: OutputColumn) -> pl.Expr:
    """The `<v>` text of a numeric cell, from the column's frame value.

    Money is the exact dollar amount as decimal text ("12.50"), which Excel reads as the
    nearest double. Dates and timestamps are Excel serial numbers (UTC: Excel has no time
    zones), shown by the column's date format.
    """
    col = pl.col(output.name)
    match output.kind:
        case ColumnKind.MONEY:
            return dollars_text(col)
        case ColumnKind.DATE:
            return excel_serial_days(col.cast(pl.Int32).cast(pl.Int64)).cast(pl.String)
        case ColumnKind.TIMESTAMP:
            micros = col.dt.epoch("us")
            days = micros // _DAY_US
            serial = excel_serial_days(days) + (micros - days * _DAY_US) / _DAY_US
            return serial.cast(pl.String)
        case ColumnKind.INTEGER:
            return col.cast(pl.String)
        case ColumnKind.TEXT:
            raise ValueError(f"{output.name} is text, not a number")


def escaped_text(text: pl.Expr) -> pl.Expr:
    """Text as xlsxwriter puts it inside `<t>`: Excel's `_xHHHH_` escapes, then XML's."""
    return text.str.replace_all(_LITERAL_ESCAPE, "_x005F$1").str.replace_many(
        _REPLACED, _REPLACEMENTS
    )


def _cell_reference(style: CellStyle) -> list[pl.Expr]:
    attributes = f'" s="{style.xf_index}"' if style.xf_index is not None else '"'
    return [pl.lit(f'<c r="{style.letter}'), pl.col(ROW_NUMBER), pl.lit(attributes)]


def text_cell(text: pl.Expr, style: CellStyle) -> pl.Expr:
    """An in-line string cell, or null (no cell) for a null or empty text."""
    escaped = escaped_text(text)
    preserve = (
        pl.when(escaped.str.contains(r"^\s|\s$"))
        .then(pl.lit(' xml:space="preserve"'))
        .otherwise(pl.lit(""))
    )
    cell = pl.concat_str(
        [
            *_cell_reference(style),
            pl.lit(' t="inlineStr"><is><t'),
            preserve,
            pl.lit(">"),
            escaped,
            pl.lit("</t></is></c>"),
        ]
    )
    return pl.when(text != "").then(cell)


def number_cell(value: pl.Expr, style: CellStyle) -> pl.Expr:
    """A numeric cell, or null (no cell) for a null value."""
    return pl.concat_str([*_cell_reference(style), pl.lit("><v>"), value, pl.lit("</v></c>")])


def cell(output: OutputColumn, style: CellStyle) -> pl.Expr:
    if output.kind is ColumnKind.TEXT:
        return text_cell(pl.col(output.name), style)
    return number_cell(number_text(output), style)


def column_styles(xf_indexes: Sequence[int | None]) -> list[CellStyle]:
    return [
        CellStyle(xl_col_to_name(number), xf_index) for number, xf_index in enumerate(xf_indexes)
    ]


def _row_element(cells: Sequence[pl.Expr]) -> pl.Expr:
    return pl.concat_str(
        [
            pl.lit('<row r="'),
            pl.col(ROW_NUMBER),
            pl.lit('">'),
            *cells,
            pl.lit("</row>"),
        ],
        ignore_nulls=True,
    ).alias("row")


def rows_xml(frame: pl.DataFrame, cells: Sequence[pl.Expr], first_row: int) -> pl.Series:
    """One `<row>` element per frame row, numbered from `first_row` (0-based, as xlsxwriter)."""
    numbered = frame.with_columns(
        pl.int_range(first_row + 1, first_row + 1 + pl.len(), dtype=pl.Int64)
        .cast(pl.String)
        .alias(ROW_NUMBER)
    )
    return numbered.select(_row_element(cells)).to_series()


def rows_xml_by_group(frame: pl.DataFrame, cells: Sequence[pl.Expr], group: str) -> pl.Series:
    """Like `rows_xml` for many one-sheet workbooks at once: each group of rows (contiguous,
    labelled by the `group` column) is numbered from row 2, under its own header row."""
    numbered = frame.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64).over(group) + 2).cast(pl.String).alias(ROW_NUMBER)
    )
    return numbered.select(_row_element(cells)).to_series()


def _cut_to_utf16_units(text: str, limit: int) -> str | None:
    """The longest prefix of `text` within `limit` UTF-16 units, never half a character
    (a surrogate pair is kept whole or dropped); None when `text` is within the limit."""
    units = text.encode("utf-16-le", "surrogatepass")
    if len(units) <= 2 * limit:
        return None
    head = units[: 2 * limit]
    if 0xD800 <= int.from_bytes(head[-2:], "little") <= 0xDBFF:
        head = head[:-2]
    return head.decode("utf-16-le", "surrogatepass")


def cut_overlong_text(frame: pl.DataFrame, text_columns: Sequence[str]) -> tuple[pl.DataFrame, int]:
    """Texts cut to Excel's 32,767 UTF-16 units per cell (an emoji counts twice), and how
    many were cut. Only texts over half the limit can exceed it, so only those are measured
    one by one; a typical batch has none.
    """
    cut = 0
    replaced: list[pl.Series] = []
    for name in text_columns:
        series = frame.get_column(name)
        suspects = series.str.len_chars() > EXCEL_MAX_TEXT_LENGTH // 2
        if not suspects.any():
            continue
        positions = suspects.arg_true()
        values = series.gather(positions).to_list()
        kept = []
        for value in values:
            shorter = _cut_to_utf16_units(value, EXCEL_MAX_TEXT_LENGTH)
            cut += shorter is not None
            kept.append(value if shorter is None else shorter)
        replaced.append(series.clone().scatter(positions, kept))
    return (frame.with_columns(replaced) if replaced else frame), cut
