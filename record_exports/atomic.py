"""Files appear under their final name only when complete: temp name, fsync, rename."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success fsync and rename it to `final`, else delete it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    try:
        yield temp
        _fsync_path(temp)
        os.replace(temp, final)
        _fsync_path(final.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomically(final: Path, payload: bytes) -> None:
    with atomic_file(final) as temp:
        temp.write_bytes(payload)


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
