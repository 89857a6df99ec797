"""NDJSON and streamed JSON: each record encoded as one JSON object by Polars, per batch.

Dollars must be JSON numbers with exactly two decimals (`12.30`), which no float and no
JSON encoder produces; so money is rendered as exact text and then unquoted. A key pattern
`"name":"` can only match structurally: inside a JSON string every `"` is escaped.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from record_exports.columns import MoneyMode
from record_exports.sinks.base import SinkOptions, SinkReport
from record_exports.sinks.text import open_output, rendered, write_string_values


def object_lines(options: SinkOptions) -> pl.Expr:
    """One JSON object per record, keys in column order."""
    encoded = pl.struct(rendered(options.columns, options.money)).struct.json_encode()
    if options.money is MoneyMode.DOLLARS:
        for column in options.columns:
            if column.is_money:
                key = re.escape(column.output_name(options.money))
                encoded = encoded.str.replace(f'"{key}":"(-?[0-9]+\\.[0-9]{{2}})"', f'"{key}":${{1}}')
    return encoded


class NdjsonSink:
    def __init__(self, path: Path, options: SinkOptions) -> None:
        self._out = open_output(path, options.compression)
        self._line = pl.concat_str(object_lines(options), pl.lit("\n"))

    def write(self, batch: pl.DataFrame) -> None:
        write_string_values(self._out, batch.select(self._line).to_series())

    def close(self) -> SinkReport:
        self._out.close()
        return SinkReport()

    def abort(self) -> None:
        self._out.close()


class JsonSink:
    """`{"records":[...]}` streamed: a record per line, never the whole document in memory."""

    def __init__(self, path: Path, options: SinkOptions) -> None:
        self._out = open_output(path, options.compression)
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
        self._out.close()
        return SinkReport()

    def abort(self) -> None:
        self._out.close()
