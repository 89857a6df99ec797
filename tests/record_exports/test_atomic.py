"""Files appear only when complete, and hashing while writing gives the digest a second read
of the finished file would give."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from record_exports import atomic
from record_exports.atomic import TEMP_MARKER, HashingWriter, atomic_file, file_digest


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


def test_atomic_file_renames_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "out.csv"
    with pytest.raises(RuntimeError), atomic_file(final) as temp:
        temp.write_bytes(b"partial")
        raise RuntimeError("failed half-way")
    assert list((tmp_path / "sub").iterdir()) == []
    with atomic_file(final) as temp:
        assert temp.parent == final.parent and temp.name.startswith(".out.csv" + TEMP_MARKER)
        temp.write_bytes(b"complete")
    assert [path.name for path in final.parent.iterdir()] == ["out.csv"]
    assert final.read_bytes() == b"complete"


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
