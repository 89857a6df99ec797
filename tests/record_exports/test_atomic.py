"""Hashing while writing gives the digest a second read of the finished file would give."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pytest

from record_exports import atomic
from record_exports.atomic import HashingWriter, file_digest
from record_exports.params import Compression
from record_exports.sinks.text import Output


def chunks() -> list[bytes]:
    """Writes of many sizes, compressible and not, a few empty."""
    sizes = [0, 1, 7, 4096, 1 << 20, 3 * (1 << 20) + 5, 0, 65_537]
    return [os.urandom(size // 2) + b"a,b\n" * (size // 8) for size in sizes]


def test_hashing_writer_equals_reading_back(tmp_path: Path) -> None:
    path = tmp_path / "plain.bin"
    writer = HashingWriter(path)
    payload = chunks()
    for chunk in payload:
        assert writer.write(chunk) == len(chunk)
    writer.write(memoryview(b"from a memoryview"))
    writer.write(bytearray(b"and a bytearray"))
    writer.close()
    writer.close()  # idempotent
    expected = b"".join(payload) + b"from a memoryview" + b"and a bytearray"
    assert path.read_bytes() == expected
    assert writer.digest() == file_digest(path)
    assert writer.digest() == (len(expected), hashlib.sha256(expected).hexdigest())


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


def test_deferred_directory_syncs_fsync_each_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many files into few folders: each rename is in place at once, each folder is fsynced
    once, by `flush` (the real fsync runs; the spy only counts what it is asked to sync)."""
    synced: list[Path] = []
    real = atomic._fsync_path

    def counting(path: Path) -> None:
        synced.append(path)
        real(path)

    monkeypatch.setattr(atomic, "_fsync_path", counting)
    syncs = atomic.DeferredDirectorySyncs()
    finals = [tmp_path / folder / f"{n}.csv" for folder in ("a", "b") for n in range(5)]
    for final in finals:
        with atomic.atomic_file(final, syncs) as temp:
            temp.write_text("x")
        assert final.read_text() == "x"
    assert [path.parent for path in synced] == [final.parent for final in finals]
    assert not any(path.is_dir() for path in synced)  # each temp file's fsync; no folder yet
    syncs.flush()
    assert sorted(synced[len(finals) :]) == [tmp_path / "a", tmp_path / "b"]
    syncs.flush()
    assert len(synced) == len(finals) + 2
