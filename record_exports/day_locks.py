"""One export at a time per sale day: a lock file per day, held from the read to the rename.

Two runs can export the same day at once: a backfill over a range and a re-export of one
changed account, say. If the one that read first renamed last, an older file would
replace a newer one. Each export therefore holds an exclusive `flock` on
`<folder>/<YYYY-MM-DD>.lock` for every day it exports, taken before it reads that day's
records and released after that day's files are in place: the export that reads later
also writes later. Days are locked in ascending order, so two exports never wait for each
other in a circle. The kernel releases the locks of a process that dies, and the lock
files stay (removing them could let two processes hold "the" lock of one day).

`flock` covers the processes of one machine (and NFS v4 clients); the daemon starts runs
as processes on its own machine.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

WaitCallback = Callable[[dt.date], None]


def lock_path(folder: Path, day: dt.date) -> Path:
    return folder / f"{day.isoformat()}.lock"


@contextmanager
def hold_days(
    folder: Path, days: Iterable[dt.date], on_wait: WaitCallback | None = None
) -> Iterator[None]:
    """Hold the lock of every day in `days` for the `with` block; `on_wait` hears of each
    day whose lock another export holds, before waiting for it."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptors: list[int] = []
    try:
        for day in sorted(set(days)):
            descriptor = os.open(lock_path(folder, day), os.O_RDWR | os.O_CREAT, 0o644)
            descriptors.append(descriptor)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(day)
                fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        for descriptor in descriptors:
            os.close(descriptor)  # releases its lock
