"""The text formats' output stream: compressed on the fly, hashed as written."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from record_exports.atomic import file_digest
from record_exports.params import Compression
from record_exports.sinks.text import Output


def chunks() -> list[bytes]:
    """Writes of many sizes, compressible and not, a few empty."""
    sizes = [0, 1, 7, 4096, 1 << 20, 3 * (1 << 20) + 5, 0, 65_537]
    return [os.urandom(size // 2) + b"a,b\n" * (size // 8) for size in sizes]


@pytest.mark.parametrize("compression", list(Compression))
def test_output_digest_is_that_of_the_final_bytes(tmp_path: Path, compression: Compression) -> None:
    path = tmp_path / f"out.{compression.value}"
    out = Output(path, compression)
    payload = chunks()
    for chunk in payload:
        out.write(chunk)
    assert out.written() is None  # not before the file is complete
    out.close()
    written = out.written()
    assert written is not None
    assert written == file_digest(path)
    if compression is Compression.NONE:
        assert path.read_bytes() == b"".join(payload)
    else:
        assert written[0] < len(b"".join(payload))
        with pa.input_stream(str(path), compression=compression.value) as stream:
            assert stream.read() == b"".join(payload)


@pytest.mark.parametrize("compression", list(Compression))
def test_aborted_output_has_no_digest(tmp_path: Path, compression: Compression) -> None:
    out = Output(tmp_path / "x", compression)
    out.write(b"partial")
    out.abort()
    assert out.written() is None
