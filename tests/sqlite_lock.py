"""A real SQLite write lock, held by another process for the length of a `with` block.

It has to be another process: SQLite's locks are POSIX file locks, which never conflict
within one process, and the ADBC driver carries its own copy of SQLite that does not
share the in-process lock table of Python's `sqlite3`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""


@contextmanager
def sqlite_write_lock(path: Path) -> Iterator[None]:
    """Another process in an exclusive (writing) transaction on `path` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
