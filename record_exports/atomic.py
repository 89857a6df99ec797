"""Files appear under their final name only when complete: temp name, fsync, rename."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

TEMP_MARKER = ".partial-"


def temp_path_for(final: Path) -> Path:
    """A hidden sibling, so the rename stays on one file system and is atomic."""
    return final.with_name(f".{final.name}{TEMP_MARKER}{uuid.uuid4().hex[:12]}")


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


DirectorySync = Callable[[Path], None]
"""Makes a folder's changed entries (a rename) durable: fsync now, or later, once."""


def fsync_directory(directory: Path) -> None:
    _fsync_path(directory)


class DeferredDirectorySyncs:
    """Folders whose entries changed, each fsynced once by `flush`.

    For a writer of many files into few folders (a day's files of many accounts): every
    rename is atomic when it happens, and durable after `flush`, which the writer calls
    before it reports the files as done. One fsync per folder instead of one per file.
    """

    def __init__(self) -> None:
        self._pending: set[Path] = set()

    def __call__(self, directory: Path) -> None:
        self._pending.add(directory)

    def flush(self) -> None:
        while self._pending:
            _fsync_path(self._pending.pop())


@contextmanager
def atomic_file(final: Path, sync_directory: DirectorySync = fsync_directory) -> Iterator[Path]:
    """Yield a temp path to write; on success fsync and rename it to `final`, else delete it.

    `sync_directory` makes the rename durable; by default at once.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    try:
        yield temp
        _fsync_path(temp)
        os.replace(temp, final)
        sync_directory(final.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomically(
    final: Path, payload: bytes, sync_directory: DirectorySync = fsync_directory
) -> None:
    with atomic_file(final, sync_directory) as temp:
        temp.write_bytes(payload)


FileDigest = tuple[int, str]
"""(size in bytes, sha256 hex) of a file's bytes, as the manifest records them."""


def file_digest(path: Path) -> FileDigest:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class HashingWriter(io.RawIOBase):
    """A new binary file at `path` that hashes its bytes as they are written.

    Put under any compression stream, `digest()` is that of the file's final bytes, so
    the manifest needs no second read of a finished file (about 0.2 s per 350 MB).
    """

    def __init__(self, path: Path, buffering: int = 1 << 20) -> None:
        super().__init__()
        self._file = path.open("wb", buffering=buffering)
        self._sha256 = hashlib.sha256()
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        # hashlib releases the GIL on large buffers; the buffered file takes every byte.
        self._sha256.update(view)
        self._file.write(view)
        self._size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        if not self.closed:
            self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()  # flushes
        finally:
            self._file.close()

    def digest(self) -> FileDigest:
        """Size and sha256 of everything written so far."""
        return self._size, self._sha256.hexdigest()


@runtime_checkable
class ReportsDigest(Protocol):
    """A sink that knows the digest of the file it wrote; None means read the file back."""

    def written(self) -> FileDigest | None: ...
