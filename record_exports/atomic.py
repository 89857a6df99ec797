"""Files appear under their final name only when complete: temp name, fsync, rename.

A file is written first as a hidden sibling `.<name>.partial-<12 hex>` (a *partial*), in
the same folder so the rename is atomic. A format that needs scratch space (xlsxwriter's
temporary files) keeps it in `<partial>.d/`, which goes with its partial.

Liveness of partials. The process writing a partial creates it and holds an exclusive
`flock` on it until it has renamed it into place or deleted it. A process that dies
(SIGKILL, OOM, machine loss) leaves its partial behind, but the kernel drops the lock with
the process's last descriptor. `sweep_stale_partials`, which every export runs on the
folders it writes into, takes each partial's lock without waiting: if it gets it, the
writer is dead and the partial (and its `.d/`) is removed; if not, a live export is
writing it and it is left alone. A `.d/` whose partial is gone is an orphan: a writer
removes its scratch before its partial disappears by rename.

What this relies on:
- flock(2) semantics. On a local file system (ext4, xfs, btrfs, tmpfs, overlayfs) the lock
  lives in the kernel and dies with the process. On NFS, Linux emulates flock with a
  whole-file POSIX lock held on the server (NFSv4: under the client's lease), so a dead
  client's partials count as live until its lease expires (90 s by default), then are
  swept; both sides open the partial read-write because NFS grants exclusive locks only to
  writers. Locks are per open file, so a sweep in the writing process itself also sees
  its own partials as live.
- Descriptors are opened close-on-exec: a program started with exec never holds a
  partial's lock; a child forked without exec inherits it and keeps the partial live until
  it exits too (the safe side).
- A file system without locks (flock fails with ENOLCK, EOPNOTSUPP, ...): writers write
  unlocked and the sweep, unable to lock either, treats every partial as live. There is
  no age fallback: no age proves a writer dead (an export of millions of rows to a slow
  disk can take an hour).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

TEMP_MARKER = ".partial-"
SCRATCH_SUFFIX = ".d"
# A partial, or the scratch folder of one: `.<name>.partial-<12 hex>[.d]`.
PARTIAL_NAME = re.compile(r"(?P<partial>\..+\.partial-[0-9a-f]{12})(?P<scratch>\.d)?")
# flock's answers that mean "not yours now": held by another open file, or no locks here.
_NOT_LOCKED = frozenset(
    {errno.EWOULDBLOCK, errno.EAGAIN, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
)
# Attempts at a new partial that a concurrent sweep may take between its creation and lock.
_CREATE_ATTEMPTS = 100


def temp_path_for(final: Path) -> Path:
    """A hidden sibling, so the rename stays on one file system and is atomic."""
    return final.with_name(f".{final.name}{TEMP_MARKER}{uuid.uuid4().hex[:12]}")


def scratch_folder_for(partial: Path) -> Path:
    """Where the writer of `partial` may keep temporary files; removed with the partial."""
    return partial.with_name(partial.name + SCRATCH_SUFFIX)


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


def fsync_file(path: Path) -> None:
    """Make a written file's bytes durable before it is renamed into place."""
    _fsync_path(path)


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


def _try_lock(descriptor: int) -> bool:
    """Take the file's exclusive flock without waiting; False when another open file holds
    it or the file system has no locks."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _NOT_LOCKED:
            return False
        raise
    return True


def _lock_for_writing(descriptor: int) -> None:
    """Hold the new partial's exclusive flock (waiting for a sweep that holds it for a
    moment); on a file system without locks the partial stays unlocked (see module doc)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    except OSError as error:
        if error.errno not in _NOT_LOCKED:
            raise


def _names_open_file(path: Path, descriptor: int) -> bool:
    """Whether `path` still names the file open as `descriptor`."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _create_locked_partial(final: Path) -> tuple[Path, int]:
    """A new, empty, locked partial for `final` and its open descriptor.

    A sweep may take the lock of a partial created a moment ago, before its writer does,
    and delete it; the writer then finds its name gone once it holds the lock, and starts
    over with a new name.
    """
    for _ in range(_CREATE_ATTEMPTS):
        temp = temp_path_for(final)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        descriptor = os.open(temp, flags, 0o666)
        try:
            _lock_for_writing(descriptor)
            if _names_open_file(temp, descriptor):
                return temp, descriptor
        except BaseException:
            os.close(descriptor)
            temp.unlink(missing_ok=True)
            raise
        os.close(descriptor)
    raise RuntimeError(f"could not hold a temporary file next to {final}: always swept away")


def _gone_is_fine(function: Any, path: str, exc_info: Any) -> None:
    """rmtree's error handler: an entry someone else removed meanwhile is no error."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def remove_folder(folder: Path) -> bool:
    """Delete a folder and its content, also while another process deletes it; False if
    there was none."""
    if not os.path.lexists(folder):
        return False
    shutil.rmtree(folder, onerror=_gone_is_fine)
    return True


@contextmanager
def partial_file(final: Path) -> Iterator[Path]:
    """Yield a new partial for `final`, locked for as long as the block runs.

    On leaving, whatever happened, its scratch folder is deleted, then what is still under
    the partial's name (the block renames it into place when it succeeds), then the lock is
    released: no one sees an unlocked partial of a live writer, nor its scratch folder
    without it.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    temp, descriptor = _create_locked_partial(final)
    try:
        yield temp
    finally:
        try:
            remove_folder(scratch_folder_for(temp))
            temp.unlink(missing_ok=True)
        finally:
            os.close(descriptor)


def publish(temp: Path, final: Path, sync_directory: DirectorySync = fsync_directory) -> None:
    """fsync the complete file `temp`, rename it to `final`, make the rename durable."""
    fsync_file(temp)
    os.replace(temp, final)
    sync_directory(final.parent)


@contextmanager
def atomic_file(final: Path, sync_directory: DirectorySync = fsync_directory) -> Iterator[Path]:
    """Yield a temp path to write; on success fsync and rename it to `final`, else delete it.

    `sync_directory` makes the rename durable; by default at once.
    """
    with partial_file(final) as temp:
        yield temp
        publish(temp, final, sync_directory)


def _remove_if_dead(partial: Path) -> bool:
    """Remove `partial` and its scratch folder if no live process holds its lock; True if
    something was removed."""
    scratch = scratch_folder_for(partial)
    try:
        descriptor = os.open(partial, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        # Renamed into place or removed: a scratch folder left is an orphan.
        return remove_folder(scratch)
    except (IsADirectoryError, PermissionError):
        return False  # not a partial this code writes, or not ours to judge: left alone
    except OSError as error:
        if error.errno == errno.ELOOP:
            return False  # a symlink: never followed, left alone
        raise
    try:
        if not _try_lock(descriptor):
            return False
        removed = _names_open_file(partial, descriptor)
        if removed:
            partial.unlink(missing_ok=True)
        return remove_folder(scratch) or removed
    finally:
        os.close(descriptor)


def sweep_stale_partials(folder: Path) -> list[Path]:
    """Remove the partials (and scratch folders) of dead writers directly in `folder`; leave
    those of live ones (see the module docstring). Returns the partials removed."""
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    partials = {
        match["partial"] for name in names if (match := PARTIAL_NAME.fullmatch(name)) is not None
    }
    return [folder / name for name in sorted(partials) if _remove_if_dead(folder / name)]


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
