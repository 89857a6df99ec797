"""CSV per RFC 4180, written batch by batch by Polars' native writer.

With the default columns and settings the bytes equal PostgreSQL's
`COPY ... (FORMAT csv, HEADER)`: quote only when needed, empty field for null, `""` for ''.
"""

from __future__ import annotations

from pathlib import Path

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


class CsvSink(TextSink):
    def __init__(self, path: Path, options: SinkOptions) -> None:
        super().__init__(path, options)
        if options.bom:
            self._out.write(UTF8_BOM)
        self._header_pending = True
        self._expressions = [
            _excel_safe(column, render(column, options.money))
            if options.excel_safe
            else render(column, options.money)
            for column in options.columns
        ]

    def write(self, batch: pl.DataFrame) -> None:
        batch.select(self._expressions).write_csv(
            self._out.stream,
            include_header=self._header_pending,
            line_terminator="\n",
        )
        self._header_pending = False
