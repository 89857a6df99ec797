"""Where `record-exports export --output PATH` writes, decided and checked before any query.

A folder means "the default file name inside it": an existing folder (whatever its name
looks like, `dir.csv/` included), or a path ending in `/`. Anything else is the file's own
path. Missing folders on the way are created when the file is written, as for EXPORTS_DIR;
a file standing where a folder must be, or a folder this process cannot write in, is bad
input, reported here, before the export reads a record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OPTION = "--output"


class OutputPathError(ValueError):
    """`--output` names a place no file can be written; the message says why, on one line."""


@dataclass(frozen=True)
class OutputTarget:
    """The folder the file goes in, and its name (`None`: the export's default name)."""

    folder: Path
    name: str | None


def resolve_output(raw: str) -> OutputTarget:
    """`--output`'s value as a folder and a file name, or `OutputPathError`; a path the
    system refuses to look at (a name too long, a NUL byte) is one too."""
    try:
        return _resolve_output(raw)
    except (OSError, ValueError) as error:
        if isinstance(error, OutputPathError):
            raise
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise OutputPathError(f"{OPTION}: not a usable path: {reason}") from None


def _resolve_output(raw: str) -> OutputTarget:
    if not raw.strip():
        raise OutputPathError(f"{OPTION}: empty; give a file path or a folder")
    path = Path(raw).expanduser().absolute()
    if raw.endswith(("/", os.sep)) or path.is_dir():
        target = OutputTarget(folder=path, name=None)
    elif path.exists() and not path.is_file():
        raise OutputPathError(f"{OPTION}: {path} exists and is not a regular file")
    else:
        target = OutputTarget(folder=path.parent, name=path.name)
    check_writable_folder(target.folder)
    return target


def check_writable_folder(folder: Path) -> None:
    """The folder exists and can take a new file, or can be created (its nearest existing
    ancestor is a folder this process may write in)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{OPTION}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{OPTION}: cannot write in {existing} (no permission or read-only)")
