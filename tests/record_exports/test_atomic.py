"""Files appear only when complete; partials of dead writers are swept, live ones kept;
hashing while writing gives the digest a second read of the finished file would give."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from record_exports import atomic
from record_exports.atomic import (
    TEMP_MARKER,
    HashingWriter,
    atomic_file,
    file_digest,
    partial_file,
    scratch_folder_for,
    sweep_stale_partials,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


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


# A writer in its own process: holds a partial (with a scratch folder) of argv[1], prints
# the partial's path, and waits for its stdin to close.
PARTIAL_WRITER = """
import sys
from pathlib import Path
from record_exports.atomic import partial_file, scratch_folder_for
with partial_file(Path(sys.argv[1])) as temp:
    temp.write_bytes(b"half a file")
    scratch_folder_for(temp).mkdir()
    (scratch_folder_for(temp) / "sheet-rows").write_bytes(b"<row/>" * 1000)
    print(temp, flush=True)
    sys.stdin.read()
"""


@contextmanager
def partial_writer(final: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A live process holding a partial of `final`; stopped (stdin closed, else killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", PARTIAL_WRITER, str(final)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        yield process, Path(process.stdout.readline().strip())
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_sweep_removes_dead_writers_partials_and_keeps_live_ones(tmp_path: Path) -> None:
    """Two real writers; one is SIGKILLed. The sweep removes the dead one's partial and
    scratch folder, and an orphan scratch folder; it leaves the live writer's partial, files
    that are not partials, and a symlink named like one. The live writer then finishes and
    removes its own."""
    final = tmp_path / "out.csv"
    final.write_text("finished")
    (tmp_path / "out.csv.manifest.json").write_text("{}")
    (tmp_path / ".hidden").write_text("not a partial")
    orphan = tmp_path / ".gone.csv.partial-0123456789ab.d"
    orphan.mkdir()
    (orphan / "rows").write_text("x")
    symlink = tmp_path / ".link.csv.partial-ba9876543210"
    symlink.symlink_to(final)
    with (
        partial_writer(final) as (dead, dead_partial),
        partial_writer(final) as (live, live_partial),
    ):
        dead.send_signal(signal.SIGKILL)
        assert dead.wait(timeout=30) == -signal.SIGKILL
        assert dead_partial.exists() and scratch_folder_for(dead_partial).exists()

        removed = sweep_stale_partials(tmp_path)

        assert removed == sorted([dead_partial, orphan.with_name(orphan.name[:-2])])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [
                ".hidden",
                symlink.name,
                live_partial.name,
                scratch_folder_for(live_partial).name,
                "out.csv",
                "out.csv.manifest.json",
            ]
        )
        assert live_partial.read_bytes() == b"half a file"
        assert sweep_stale_partials(tmp_path) == []  # the live one, again
        assert live.stdin is not None
        live.stdin.close()
        assert live.wait(timeout=30) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".hidden", symlink.name, "out.csv", "out.csv.manifest.json"]
    )
    assert final.read_text() == "finished"


def test_a_sweep_in_the_writing_process_keeps_its_partials(tmp_path: Path) -> None:
    """flock locks belong to open files, so a process's own live partial is live to it."""
    with partial_file(tmp_path / "a.csv") as temp:
        temp.write_bytes(b"rows")
        assert sweep_stale_partials(tmp_path) == []
        assert temp.read_bytes() == b"rows"
    assert list(tmp_path.iterdir()) == []


def test_writers_never_lose_their_partial_to_a_concurrent_sweep(tmp_path: Path) -> None:
    """A sweep looping in another thread while files are written and renamed one after the
    other: a sweep may take a just-created partial's lock before its writer does; the writer
    then starts over with a new name, and every file arrives complete."""
    done = threading.Event()
    sweeps = 0

    def sweep_until_done() -> None:
        nonlocal sweeps
        while not done.is_set():
            sweep_stale_partials(tmp_path)
            sweeps += 1

    sweeper = threading.Thread(target=sweep_until_done)
    sweeper.start()
    try:
        for number in range(300):
            with atomic_file(tmp_path / f"{number}.csv") as temp:
                temp.write_bytes(b"x" * number)
    finally:
        done.set()
        sweeper.join(timeout=60)
    assert sweeps > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.csv" for n in range(300))
    assert all((tmp_path / f"{n}.csv").stat().st_size == n for n in range(300))


def test_sweep_of_a_missing_folder_is_nothing(tmp_path: Path) -> None:
    assert sweep_stale_partials(tmp_path / "absent") == []
    (tmp_path / "file").write_text("")
    assert sweep_stale_partials(tmp_path / "file") == []
