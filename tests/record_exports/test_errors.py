"""Errors in one line: what request rows, logs and the CLI show."""

from __future__ import annotations

import pytest

from record_exports.errors import ExportInputError, first_line


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("bad column\nsecond line"), "ValueError: bad column"),
        (ConnectionError(), "ConnectionError"),
        (RuntimeError("  \n  padded  \nrest"), "RuntimeError: padded"),
        (
            "psycopg.OperationalError: connection refused\n\tIs the server running?",
            "psycopg.OperationalError: connection refused",
        ),
        ("\n  first  \nsecond", "first"),
        ("", ""),
    ],
)
def test_first_line(error: BaseException | str, line: str) -> None:
    assert first_line(error) == line


def test_input_error_names_its_field() -> None:
    error = ExportInputError("columns", "unknown column(s) 'x'")
    assert (error.field, error.message, str(error)) == (
        "columns",
        "unknown column(s) 'x'",
        "columns: unknown column(s) 'x'",
    )
    assert first_line(error) == "ExportInputError: columns: unknown column(s) 'x'"
