"""NDJSON and streamed JSON: each record built as one JSON object by Polars, per batch.

An object line is a `concat_str` of constant key fragments and per-column value
fragments, all computed over whole columns (no per-row Python, no per-row serializer):
text is escaped the way PostgreSQL's `row_to_json` (and serde_json) escape it — `"`, `\\`,
`\\b \\f \\n \\r \\t` and other control characters as `\\u00xx`, everything else as UTF-8 —
integers are their digits, a null is `null`. Dollars are JSON numbers with exactly two
decimals (`12.30`), made from the integer cents, never from a float.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from record_exports.columns import ColumnKind, MoneyMode, OutputColumn
from record_exports.sinks.base import SinkOptions, SinkReport
from record_exports.sinks.text import TextSink, render, write_string_values

_SHORT_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_ESCAPED = ["\\", '"', *(chr(code) for code in range(0x20))]
_ESCAPES = [_SHORT_ESCAPES.get(char, f"\\u{ord(char):04x}") for char in _ESCAPED]


def json_string(expr: pl.Expr) -> pl.Expr:
    """A string column as JSON string literals (null stays null)."""
    return pl.concat_str(pl.lit('"'), expr.str.replace_many(_ESCAPED, _ESCAPES), pl.lit('"'))


def _json_value(column: OutputColumn, money: MoneyMode) -> pl.Expr:
    rendered = render(column, money)
    if column.kind is ColumnKind.DATE:
        value = json_string(rendered.dt.to_string("%Y-%m-%d"))
    elif column.kind in (ColumnKind.TEXT, ColumnKind.TIMESTAMP):
        value = json_string(rendered)
    else:
        # Integers and cents as digits; dollars are already exact two-decimal text.
        value = rendered.cast(pl.String)
    return value.fill_null(pl.lit("null"))


def object_lines(options: SinkOptions) -> pl.Expr:
    """One JSON object per record, keys in column order."""
    parts: list[pl.Expr] = []
    for number, column in enumerate(options.columns):
        key = json.dumps(column.output_name(options.money))
        parts.append(pl.lit(("{" if number == 0 else ",") + key + ":"))
        parts.append(_json_value(column, options.money))
    parts.append(pl.lit("}"))
    return pl.concat_str(parts)


class NdjsonSink(TextSink):
    def __init__(self, path: Path, options: SinkOptions) -> None:
        super().__init__(path, options)
        self._line = pl.concat_str(object_lines(options), pl.lit("\n"))

    def write(self, batch: pl.DataFrame) -> None:
        write_string_values(self._out, batch.select(self._line).to_series())


class JsonSink(TextSink):
    """`{"records":[...]}` streamed: a record per line, never the whole document in memory."""

    def __init__(self, path: Path, options: SinkOptions) -> None:
        super().__init__(path, options)
        self._out.write(b'{"records":[')
        self._first = True
        self._line = pl.concat_str(pl.lit(",\n"), object_lines(options))

    def write(self, batch: pl.DataFrame) -> None:
        if batch.height == 0:
            return
        # The first record of the file takes no comma before it.
        write_string_values(self._out, batch.select(self._line).to_series(), skip=int(self._first))
        self._first = False

    def close(self) -> SinkReport:
        self._out.write(b"\n]}\n")
        return super().close()
