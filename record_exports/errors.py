"""Errors the engine raises on purpose; the CLI maps them to exit codes, Dagster to failed runs."""

from __future__ import annotations


class ExportInputError(ValueError):
    """Bad input, found before any record is read; `field` names the offending setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ExportFailedError(RuntimeError):
    """The export started but could not finish; no file was left under a final name."""
