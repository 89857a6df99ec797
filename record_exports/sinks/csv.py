"""CSV per RFC 4180, written batch by batch by Polars' native writer.

With the default columns and settings the bytes equal PostgreSQL's
`COPY ... (FORMAT csv, HEADER)`: quote only when needed, empty field for null, `""` for ''.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl

from record_exports.columns import ColumnKind, OutputColumn
from record_exports.sinks.base import SinkOptions
from record_exports.sinks.text import UTF8_BOM, TextSink, render

# OWASP: cells starting with these may be run as formulas by spreadsheet programs.
FORMULA_TRIGGERS = r"^[=+\-@\t\r]"


def _excel_safe(column: OutputColumn, expr: pl.Expr) -> pl.Expr:
    if column.kind is not ColumnKind.TEXT:
        return expr
    return (
        pl.when(expr.str.contains(FORMULA_TRIGGERS))
        .then(pl.lit("'") + expr)
        .otherwise(expr)
        .alias(column.name)
    )


def csv_columns(options: SinkOptions) -> list[pl.Expr]:
    """The frame's columns as the CSV shows them (names, text, excel_safe)."""
    return [
        _excel_safe(column, render(column, options.money))
        if options.excel_safe
        else render(column, options.money)
        for column in options.columns
    ]


def write_csv_rows(rendered: pl.DataFrame, stream: Any, *, include_header: bool) -> None:
    """Rows already in `csv_columns` form, appended to `stream` as RFC 4180 CSV."""
    rendered.write_csv(stream, include_header=include_header, line_terminator="\n")


def _field(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column's CSV field text as `write_csv` writes it: quoted only when it holds a quote,
    comma, CR or LF, or is the empty string (a null is an empty field)."""
    column = pl.col(name)
    if dtype != pl.String:
        return column.cast(pl.String).fill_null("")
    quoted = pl.concat_str(
        [pl.lit('"'), column.str.replace_all('"', '""', literal=True), pl.lit('"')]
    )
    needs_quotes = column.str.contains(r'[",\r\n]') | (column == "")
    return pl.when(needs_quotes).then(quoted).otherwise(column).fill_null("")


def csv_lines(rendered: pl.DataFrame) -> pl.Series:
    """Each row of a frame in `csv_columns` form as one CSV line ending in LF: the bytes
    `write_csv_rows` writes for it, so the rows of many files can be rendered at once and
    cut per file (sinks.text.write_string_values)."""
    fields = [_field(name, dtype) for name, dtype in rendered.schema.items()]
    return rendered.select(
        pl.concat_str([pl.concat_str(fields, separator=","), pl.lit("\n")]).alias("line")
    ).to_series()


def csv_header(rendered: pl.DataFrame) -> bytes:
    """The header line `write_csv_rows` writes for a frame in `csv_columns` form."""
    buffer = io.BytesIO()
    write_csv_rows(rendered.clear(), buffer, include_header=True)
    return buffer.getvalue()


class CsvSink(TextSink):
    def __init__(self, path: Path, options: SinkOptions) -> None:
        super().__init__(path, options)
        if options.bom:
            self._out.write(UTF8_BOM)
        self._header_pending = True
        self._expressions = csv_columns(options)

    def write(self, batch: pl.DataFrame) -> None:
        write_csv_rows(
            batch.select(self._expressions), self._out.stream, include_header=self._header_pending
        )
        self._header_pending = False
