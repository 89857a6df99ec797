"""Cell XML helpers against xlsxwriter's own rules (its functions are the oracle)."""

from __future__ import annotations

import polars as pl
import pytest
from xlsxwriter.utility import _utf16_truncate
from xlsxwriter.worksheet import Worksheet

from record_exports.sinks.xlsx_cells import (
    EXCEL_MAX_TEXT_LENGTH,
    _cut_to_utf16_units,
    cut_overlong_text,
    escaped_text,
)

LIMIT = EXCEL_MAX_TEXT_LENGTH
BOUNDARY_TEXTS = [
    "x" * LIMIT,
    "x" * (LIMIT + 1),
    "x" * (LIMIT - 1) + "😀",
    "x" * (LIMIT - 2) + "😀",
    "x" * (LIMIT - 1) + "😀" + "y",
    "😀" * (LIMIT // 2 + 1),
    "é" * 40_000,
    "中" * LIMIT + "😀",
]


@pytest.mark.parametrize("text", BOUNDARY_TEXTS, ids=range(len(BOUNDARY_TEXTS)))
def test_cut_agrees_with_xlsxwriter(text: str) -> None:
    theirs = _utf16_truncate(text, LIMIT)
    ours = _cut_to_utf16_units(text, LIMIT)
    assert (ours if ours is not None else text) == theirs
    assert (ours is None) == (theirs == text)


def test_cut_overlong_text_counts_and_keeps_the_rest() -> None:
    frame = pl.DataFrame(
        {
            "a": [*BOUNDARY_TEXTS, None, "short"],
            "b": ["plain"] * (len(BOUNDARY_TEXTS) + 2),
        }
    )
    cut_frame, cut = cut_overlong_text(frame, ["a", "b"])
    expected = [_utf16_truncate(text, LIMIT) for text in BOUNDARY_TEXTS]
    assert cut == sum(text != short for text, short in zip(BOUNDARY_TEXTS, expected, strict=True))
    assert cut_frame.get_column("a").to_list() == [*expected, None, "short"]
    assert cut_frame.get_column("b").equals(frame.get_column("b"))
    assert frame.get_column("a").to_list()[1] == "x" * (LIMIT + 1), "the input is not changed"


ESCAPE_CASES = [
    "plain",
    "a&b<c>d\"e'f",
    "_x0041_ and _X0041_ and _x00zz_",
    "".join(chr(code) for code in range(0x20)),
    "\ufffe\uffff",
    "&amp; already",
    "<r>&</r>",
]


@pytest.mark.parametrize("text", ESCAPE_CASES, ids=range(len(ESCAPE_CASES)))
def test_escaping_agrees_with_xlsxwriter(text: str) -> None:
    theirs = Worksheet()._escape_data(Worksheet._escape_control_characters(text))
    ours = pl.select(escaped_text(pl.lit(text))).item()
    assert ours == theirs
