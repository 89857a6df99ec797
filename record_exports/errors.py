"""Errors the engine raises on purpose, and the one-line form every error is reported in.

The CLI maps them to exit codes, Dagster to failed runs.
"""

from __future__ import annotations


class ExportInputError(ValueError):
    """Bad input, found before any record is read; `field` names the offending setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ExportFailedError(RuntimeError):
    """The export started but could not finish for a reason explained in its message (a full
    temporary folder, a locked or damaged SQLite file); no file was left under a final name."""


def first_line(error: BaseException | str) -> str:
    """One line for a request row, a log line or a CLI message: an exception as
    `Type: first line of its message` (its type alone when it has none), an error text (one
    Dagster recorded, or a driver's) as its first non-blank line."""
    if isinstance(error, str):
        lines = error.strip().splitlines()
        return lines[0].strip() if lines else ""
    text = first_line(str(error))
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
