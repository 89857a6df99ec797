"""What the text formats (CSV, NDJSON, JSON) share: the output stream and value rendering."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow as pa

from record_exports.columns import ColumnKind, MoneyMode, OutputColumn
from record_exports.money import dollars_text
from record_exports.params import Compression

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
UTF8_BOM = b"\xef\xbb\xbf"


def open_output(path: Path, compression: Compression) -> BinaryIO | pa.NativeFile:
    """A binary stream to `path`, compressed on the fly when asked (pyarrow's codecs)."""
    if compression is Compression.NONE:
        return path.open("wb", buffering=1 << 20)
    return pa.CompressedOutputStream(str(path), compression.value)


def render(column: OutputColumn, money: MoneyMode) -> pl.Expr:
    """The column as text formats show it: timestamps ISO 8601 UTC, dollars as exact text."""
    expr = pl.col(column.name)
    if column.kind is ColumnKind.TIMESTAMP:
        expr = expr.dt.to_string(TIMESTAMP_FORMAT)
    elif column.is_money and money is MoneyMode.DOLLARS:
        expr = dollars_text(expr)
    return expr.alias(column.output_name(money))


def rendered(columns: Sequence[OutputColumn], money: MoneyMode) -> list[pl.Expr]:
    return [render(column, money) for column in columns]


def write_string_values(out: BinaryIO | pa.NativeFile, lines: pl.Series, skip: int = 0) -> None:
    """Write a string column's values back to back, straight from its Arrow buffer.

    The values are already complete lines, so their concatenated bytes are the file's
    bytes; `skip` drops leading bytes of the first value (a separator not wanted there).
    """
    array = lines.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
    if len(array) == 0:
        return
    assert isinstance(array, pa.LargeStringArray | pa.StringArray)
    _, offsets_buffer, data = array.buffers()
    assert offsets_buffer is not None and data is not None
    if isinstance(array, pa.LargeStringArray):
        offsets = memoryview(offsets_buffer).cast("q")
    else:
        offsets = memoryview(offsets_buffer).cast("i")
    start = offsets[array.offset] + skip
    end = offsets[array.offset + len(array)]
    out.write(memoryview(data)[start:end])
