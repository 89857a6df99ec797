"""What the text formats (CSV, NDJSON, JSON) share: the output stream and value rendering."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

import polars as pl
import pyarrow as pa

from record_exports.atomic import FileDigest, HashingWriter
from record_exports.columns import ColumnKind, MoneyMode, OutputColumn
from record_exports.money import dollars_text
from record_exports.params import Compression
from record_exports.sinks.base import SinkOptions, SinkReport

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
UTF8_BOM = b"\xef\xbb\xbf"


class Output:
    """A binary stream to a new file, compressed on the fly when asked (pyarrow's codecs).

    The file's bytes (the compressed ones, when compressed) are hashed as they are
    written, so the manifest's size and sha256 need no second read of the file.
    """

    def __init__(self, path: Path, compression: Compression) -> None:
        self._file = HashingWriter(path)
        self.stream: BinaryIO | pa.NativeFile = (
            self._file
            if compression is Compression.NONE
            else pa.CompressedOutputStream(self._file, compression.value)
        )
        self._digest: FileDigest | None = None

    def write(self, data: bytes | memoryview) -> None:
        self.stream.write(data)

    def close(self) -> None:
        """Complete the file (a compressed stream writes its last frame first)."""
        if self._digest is None:
            self._release()
            self._digest = self._file.digest()

    def abort(self) -> None:
        """Release the file after a failure; it has no digest."""
        self._release()

    def _release(self) -> None:
        try:
            if self.stream is not self._file and not self.stream.closed:
                self.stream.close()
        finally:
            self._file.close()

    def written(self) -> FileDigest | None:
        """Size and sha256 of the complete file, once closed."""
        return self._digest


class TextSink:
    """What the text sinks share: one `Output`, closed, aborted and digested the same way."""

    def __init__(self, path: Path, options: SinkOptions) -> None:
        self._out = Output(path, options.compression)

    def close(self) -> SinkReport:
        self._out.close()
        return SinkReport()

    def abort(self) -> None:
        self._out.abort()

    def written(self) -> FileDigest | None:
        return self._out.written()


def render(column: OutputColumn, money: MoneyMode) -> pl.Expr:
    """The column as text formats show it: timestamps ISO 8601 UTC, dollars as exact text."""
    expr = pl.col(column.name)
    if column.kind is ColumnKind.TIMESTAMP:
        expr = expr.dt.to_string(TIMESTAMP_FORMAT)
    elif column.is_money and money is MoneyMode.DOLLARS:
        expr = dollars_text(expr)
    return expr.alias(column.output_name(money))


class BinaryOutput(Protocol):
    def write(self, data: memoryview, /) -> object: ...


def write_string_values(out: BinaryOutput, lines: pl.Series, skip: int = 0) -> None:
    """Write a string column's values back to back, straight from its Arrow buffer.

    The values are already complete lines (or rows, or elements), so their concatenated
    bytes are the file's bytes; `skip` drops leading bytes of the first value (a separator
    not wanted there).
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


class StringRuns:
    """A string column's values as one UTF-8 buffer, handed out as runs of consecutive
    values without copying: the rendered rows of many small files, cut per file."""

    def __init__(self, values: pl.Series) -> None:
        array = values.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
        assert isinstance(array, pa.LargeStringArray | pa.StringArray)
        _, offsets_buffer, data = array.buffers()
        assert offsets_buffer is not None and data is not None
        offsets = memoryview(offsets_buffer)
        self._offsets = (
            offsets.cast("q") if isinstance(array, pa.LargeStringArray) else offsets.cast("i")
        )
        self._data = memoryview(data)
        self._first = array.offset
        self._array = array  # keeps the buffers alive

    def run(self, first: int, count: int) -> memoryview:
        """The bytes of values `first` .. `first + count - 1`, back to back."""
        start = self._first + first
        return self._data[self._offsets[start] : self._offsets[start + count]]
