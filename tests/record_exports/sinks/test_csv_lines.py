"""CSV rows rendered for many files at once are the bytes write_csv (and COPY) writes."""

from __future__ import annotations

import datetime as dt
import io
import random

import polars as pl

from record_exports.sinks.csv import csv_header, csv_lines, write_csv_rows
from record_exports.sinks.text import StringRuns
from tests.factories import HOSTILE

ALPHABET = ["a", " ", '"', ",", "\n", "\r", "\t", "\\", ".", "é", "🎉", "\x00", "\u2028", "'", "="]


def test_lines_equal_write_csv_for_any_text() -> None:
    rng = random.Random(5)
    texts = [
        None if rng.random() < 0.1 else "".join(rng.choices(ALPHABET, k=rng.randint(0, 6)))
        for _ in range(20_000)
    ] + HOSTILE
    frame = pl.DataFrame(
        {
            "text": texts,
            "number": [rng.choice([None, -5, 0, 12345678901]) for _ in texts],
            "day": [rng.choice([None, dt.date(2024, 2, 29)]) for _ in texts],
            "again": texts[::-1],
        }
    )
    expected = io.BytesIO()
    write_csv_rows(frame, expected, include_header=True)
    lines = StringRuns(csv_lines(frame))
    assert csv_header(frame) + bytes(lines.run(0, frame.height)) == expected.getvalue()


def test_runs_of_lines_are_the_files_of_their_rows() -> None:
    frame = pl.DataFrame({"text": ["a,b", "", None, 'q"', "x\ny"], "n": [1, 2, 3, 4, 5]})
    lines = StringRuns(csv_lines(frame.slice(1)))  # an offset into the buffers, too
    expected = io.BytesIO()
    write_csv_rows(frame.slice(2, 2), expected, include_header=False)
    assert bytes(lines.run(1, 2)) == expected.getvalue() == b',3\n"q""",4\n'
