"""Probe of the xlsxwriter internals SheetRowData uses, each by name: an xlsxwriter upgrade
that renames or changes one fails here first."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest
import xlsxwriter

from record_exports.sinks.xlsx_internals import SheetRowData


def test_the_names_it_relies_on(tmp_path: Path) -> None:
    workbook = xlsxwriter.Workbook(str(tmp_path / "probe.xlsx"), {"constant_memory": True})
    sheet = workbook.add_worksheet()
    assert sheet._check_dimensions(0, 0) == 0
    assert sheet._check_dimensions(1_048_576, 0) == -1
    assert (sheet.dim_rowmin, sheet.dim_colmin) == (0, 0)
    assert hasattr(sheet.row_data_fh, "buffer")
    assert Path(sheet.row_data_filename).exists()
    assert isinstance(workbook.add_format({"bold": True})._get_xf_index(), int)
    workbook.close()


def test_appended_rows_are_the_sheet_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.xlsx"
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Records")
    bold = SheetRowData.style_index(workbook.add_format({"bold": True}))
    rows = pl.Series(
        [
            f'<row r="1"><c r="A1" s="{bold}" t="inlineStr"><is><t>Qty</t></is></c></row>',
            '<row r="2"><c r="A2"><v>7</v></c></row>',
        ]
    )
    SheetRowData(sheet).append(rows, 0, 2, 0)
    workbook.close()
    cells = openpyxl.load_workbook(path)["Records"]
    assert [[cell.value for cell in row] for row in cells.iter_rows()] == [["Qty"], [7]]
    assert cells["A1"].font.bold
    assert cells.dimensions == "A1:A2"


def test_a_row_past_the_limit_is_refused_and_discard_removes_the_temp_file(
    tmp_path: Path,
) -> None:
    workbook = xlsxwriter.Workbook(str(tmp_path / "big.xlsx"), {"constant_memory": True})
    sheet = workbook.add_worksheet("Records")
    data = SheetRowData(sheet)
    with pytest.raises(RuntimeError, match="row 1048577, column 1 does not fit sheet 'Records'"):
        data.append(pl.Series(["<row/>"]), 1_048_576, 1, 0)
    temp = Path(sheet.row_data_filename)
    data.discard()
    data.discard()
    assert not temp.exists() and sheet.row_data_fh.closed
    assert SheetRowData.style_index(None) is None
