"""Small workbooks built many at once: the parts XlsxSink would write, read back the same."""

from __future__ import annotations

import datetime as dt
import io
import random
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from python_calamine import CalamineWorkbook

from record_exports.columns import OutputColumn, column, resolve_columns
from record_exports.sinks.base import SinkOptions
from record_exports.sinks.xlsx import XlsxSink, _column_widths
from record_exports.sinks.xlsx_workbooks import (
    SHEET_PART,
    SmallWorkbooks,
    WorkbookRows,
    widths_by_group,
)
from record_exports.sinks.zip_members import archive, member
from tests.record_exports.sinks.test_xlsx import HOSTILE_TEXTS

GROUP = "group"
DEFAULT = resolve_columns([], False)
MIXED = tuple(
    column(name)
    for name in ("id", "item_name", "qty", "sale_date", "updated_at", "profit_cents", "status")
)


def random_frame(columns: tuple[OutputColumn, ...], rows: int, seed: int) -> pl.DataFrame:
    """Rows with hostile and long texts, nulls, negative and huge money, in groups."""
    rng = random.Random(seed)
    texts = [*HOSTILE_TEXTS, "", "x" * 40_000, "é" * 33_000, "a\u2028" * 40]

    def value(kind: str) -> object:
        if rng.random() < 0.15:
            return None
        return {
            "text": lambda: rng.choice(texts),
            "integer": lambda: rng.choice([1, 7, 123456, -3]),
            "money": lambda: rng.choice([0, 5, -5, 99, 100, -123456, 10**14, 2**40]),
            "date": lambda: dt.date(2024, 2, 29) + dt.timedelta(days=rng.randint(0, 900)),
            "timestamp": lambda: (
                dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
                + dt.timedelta(seconds=rng.randint(0, 10**8), microseconds=rng.randint(0, 999_999))
            ),
        }[kind]()

    dtypes = {"text": pl.String, "integer": pl.Int64, "money": pl.Int64, "date": pl.Date}
    data = {
        c.name: pl.Series(
            [value(c.kind.value) for _ in range(rows)],
            dtype=dtypes.get(c.kind.value, pl.Datetime("us", "UTC")),
        )
        for c in columns
    }
    groups = sorted(rng.randint(0, max(1, rows // 4)) for _ in range(rows))
    return pl.DataFrame(data).with_columns(pl.Series(GROUP, groups))


def lengths_of(frame: pl.DataFrame) -> list[int]:
    return frame.group_by(GROUP, maintain_order=True).len()["len"].to_list()


def single_workbooks(
    frame: pl.DataFrame, options: SinkOptions, folder: Path
) -> list[zipfile.ZipFile]:
    """What XlsxSink writes for each group alone."""
    books = []
    for index, part in enumerate(frame.partition_by(GROUP, maintain_order=True)):
        path = folder / f"{index}.xlsx"
        sink = XlsxSink(path, options)
        sink.write(part.drop(GROUP))
        sink.close()
        books.append(zipfile.ZipFile(path))
    return books


@pytest.mark.parametrize(("columns", "seed"), [(DEFAULT, 1), (MIXED, 2), (MIXED, 3)])
def test_every_part_is_what_xlsxwriter_writes(
    tmp_path: Path, columns: tuple[OutputColumn, ...], seed: int
) -> None:
    options = SinkOptions(columns=columns)
    frame = random_frame(columns, 300, seed)
    workbooks = SmallWorkbooks(options, tmp_path)
    prepared = workbooks.prepare(frame, GROUP, lengths_of(frame))
    expected = single_workbooks(frame, options, tmp_path)
    assert len(prepared) == len(expected) > 20
    for rows, single in zip(prepared, expected, strict=True):
        built = zipfile.ZipFile(io.BytesIO(workbooks.workbook(rows)))
        assert built.testzip() is None
        assert built.namelist() == single.namelist()
        for name in single.namelist():
            if name != "docProps/core.xml":  # its creation time
                assert built.read(name) == single.read(name), name


def test_read_back_by_openpyxl_and_calamine_like_the_sink(tmp_path: Path) -> None:
    options = SinkOptions(columns=MIXED)
    frame = random_frame(MIXED, 120, 4)
    workbooks = SmallWorkbooks(options, tmp_path)
    prepared = workbooks.prepare(frame, GROUP, lengths_of(frame))
    singles = single_workbooks(frame, options, tmp_path)
    for index, (rows, single) in enumerate(zip(prepared, singles, strict=True)):
        built = tmp_path / f"built-{index}.xlsx"
        built.write_bytes(workbooks.workbook(rows))
        reference = Path(str(single.filename))
        for path in (built, reference):
            assert openpyxl.load_workbook(path, read_only=True).sheetnames == ["Records"]
        assert list(
            openpyxl.load_workbook(built, read_only=True)["Records"].iter_rows(values_only=True)
        ) == list(
            openpyxl.load_workbook(reference, read_only=True)["Records"].iter_rows(values_only=True)
        )
        assert (
            CalamineWorkbook.from_path(str(built)).get_sheet_by_name("Records").to_python()
            == CalamineWorkbook.from_path(str(reference)).get_sheet_by_name("Records").to_python()
        )


def test_text_is_never_a_formula_and_long_text_is_cut_and_counted(tmp_path: Path) -> None:
    columns = (column("item_name"),)
    frame = pl.DataFrame(
        {"item_name": ["=1+1", "x" * 40_000, "@SUM(A1)", "😀" * 20_000], GROUP: [0, 0, 1, 1]}
    )
    workbooks = SmallWorkbooks(SinkOptions(columns=columns), tmp_path)
    first, second = workbooks.prepare(frame, GROUP, [2, 2])
    assert (first.truncated_cells, second.truncated_cells) == (1, 1)
    path = tmp_path / "first.xlsx"
    path.write_bytes(workbooks.workbook(first))
    sheet = openpyxl.load_workbook(path)["Records"]
    assert sheet["A2"].data_type == "s" and sheet["A2"].value == "=1+1"
    assert len(sheet["A3"].value) == 32_767
    path.write_bytes(workbooks.workbook(second))
    assert len(openpyxl.load_workbook(path)["Records"]["A3"].value) == 16_383  # 2 units each


def test_widths_follow_the_sinks_rule(tmp_path: Path) -> None:
    frame = random_frame(MIXED, 2000, 5)
    expected = [
        tuple(_column_widths(MIXED, part.drop(GROUP).head(200)))
        for part in frame.partition_by(GROUP, maintain_order=True)
    ]
    assert widths_by_group(frame, MIXED, GROUP) == expected


def test_zip_of_deflated_members_reads_back(tmp_path: Path) -> None:
    infos = [zipfile.ZipInfo(name, (1980, 1, 31, 0, 0, 0)) for name in ("a.xml", "b/c.xml")]
    payloads = [b"<a/>" * 1000, bytes(range(256)) * 50]
    data = archive([member(info, payload) for info, payload in zip(infos, payloads, strict=True)])
    with zipfile.ZipFile(io.BytesIO(data)) as read:
        assert read.testzip() is None
        assert [read.read(name) for name in read.namelist()] == payloads
        assert read.getinfo("a.xml").date_time == (1980, 1, 31, 0, 0, 0)


def test_one_column_ranges_are_written_like_xlsxwriter(tmp_path: Path) -> None:
    """xlsxwriter writes a one-cell range as `A1`, not `A1:A1`."""
    workbooks = SmallWorkbooks(SinkOptions(columns=(column("id"),)), tmp_path)
    header_only = workbooks.workbook(WorkbookRows(memoryview(b""), 0, (8,), 0))
    sheet = zipfile.ZipFile(io.BytesIO(header_only)).read(SHEET_PART)
    assert b'<dimension ref="A1"/>' in sheet and b'<autoFilter ref="A1"/>' in sheet
    frame = pl.DataFrame({"id": ["a", "b"], GROUP: [0, 0]})
    [rows] = workbooks.prepare(frame, GROUP, [2])
    built = zipfile.ZipFile(io.BytesIO(workbooks.workbook(rows)))
    [single] = single_workbooks(frame, SinkOptions(columns=(column("id"),)), tmp_path)
    assert built.read(SHEET_PART) == single.read(SHEET_PART)
