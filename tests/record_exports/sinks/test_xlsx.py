"""XlsxSink, checked by reading the files back with independent readers (openpyxl, calamine)."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest
import xlsxwriter
from python_calamine import CalamineWorkbook
from xlsxwriter.worksheet import Worksheet

from record_exports.atomic import scratch_folder_for
from record_exports.columns import ColumnKind, MoneyMode, OutputColumn, column, resolve_columns
from record_exports.database import DatabaseTarget
from record_exports.sinks.base import SinkOptions, SinkReport
from record_exports.sinks.xlsx import XlsxSink
from tests.factories import oracle_rows
from tests.record_exports import exporting
from tests.record_exports.exporting import decode_excel, url_of

UTC = dt.UTC
CELL_XML = re.compile(r'<c r="([A-Z]+[0-9]+)".*?</c>', re.DOTALL)
NUMBER_CELL = re.compile(
    r'<c r="[A-Z]+[0-9]+"(?: s="(?P<style>[0-9]+)")?><v>(?P<value>[^<]*)</v></c>'
)

HOSTILE_TEXTS = [
    'say "hi", then leave',
    "line one\nline two",
    "windows\r\nline",
    "tab\there",
    "emoji 😀🎉 and accents éü 中文",
    "  leading and trailing spaces  ",
    "<b>&amp; not markup</b>",
    "control \x01 char",
    "literal _x0041_ escape",
    "-2+3",
    "@SUM(A1)",
    "007",
    "<r>&</r>",
    "<r><t>fake</t></r>",
    " \u00a0non-breaking\u2003",
]


def columns_of(*names: str) -> tuple[OutputColumn, ...]:
    return tuple(column(name) for name in names)


def frame(columns: Sequence[OutputColumn], data: dict[str, list[Any]]) -> pl.DataFrame:
    """A batch as the engine hands it over: exactly the columns, canonical names and dtypes."""
    return pl.DataFrame(
        {output.name: data[output.name] for output in columns},
        schema={output.name: output.dtype for output in columns},
    )


def export(
    path: Path,
    columns: tuple[OutputColumn, ...],
    batches: Sequence[pl.DataFrame],
    **options: Any,
) -> SinkReport:
    sink = XlsxSink(path, SinkOptions(columns=columns, **options))
    for batch in batches:
        sink.write(batch)
    return sink.close()


def sheet_values(path: Path, sheet: str) -> list[list[Any]]:
    worksheet = openpyxl.load_workbook(path)[sheet]
    return [[decode_excel(cell.value) for cell in row] for row in worksheet.iter_rows()]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "records.xlsx"


def test_header_is_titled_bold_grey_frozen_and_filtered(out: Path) -> None:
    columns = resolve_columns([], include_remarks=False)
    batch = frame(
        columns,
        {
            output.name: [
                {
                    ColumnKind.TEXT: "x",
                    ColumnKind.INTEGER: 1,
                    ColumnKind.MONEY: 100,
                    ColumnKind.DATE: dt.date(2024, 1, 2),
                }[output.kind]
            ]
            * 2
            for output in columns
        },
    )
    report = export(out, columns, [batch])

    worksheet = openpyxl.load_workbook(out)["Records"]
    header = worksheet[1]
    assert [cell.value for cell in header] == [
        "ID",
        "eBay Order ID",
        "Sale Date",
        "Item Name",
        "Qty",
        "Sale Price",
        "eBay Fees",
        "Earnings Net",
        "Amazon Price",
        "Amazon Tax",
        "Amazon Shipping",
        "COGS Total",
        "Amazon Order ID",
        "Status",
        "Return Label Cost",
        "Profit",
    ]
    for cell in header:
        assert cell.data_type == "s"
        assert cell.font.bold
        assert cell.fill.fill_type == "solid"
        assert cell.fill.fgColor.rgb == "FFD9D9D9"
    assert worksheet.freeze_panes == "A2"
    assert worksheet.auto_filter.ref == "A1:P3"
    assert report == SinkReport(warnings=[], truncated_cells=0, sheets=1)


def test_column_widths_come_from_header_and_sample_clamped(out: Path) -> None:
    columns = columns_of("qty", "item_name", "sale_date", "status")
    batch = frame(
        columns,
        {
            "qty": [1],
            "item_name": ["n" * 500],
            "sale_date": [dt.date(2024, 1, 1)],
            "status": ["RETURN_LABEL_PROVIDED"],
        },
    )
    export(out, columns, [batch])

    dimensions = openpyxl.load_workbook(out)["Records"].column_dimensions
    widths = {letter: dimensions[letter].width for letter in "ABCD"}
    # xlsxwriter adds its own fraction of padding to the character widths.
    assert 8 <= widths["A"] < 9
    assert 60 <= widths["B"] < 61
    assert 12 <= widths["C"] < 13
    assert len("RETURN_LABEL_PROVIDED") + 2 <= widths["D"] < len("RETURN_LABEL_PROVIDED") + 3


@pytest.mark.parametrize("money", [MoneyMode.CENTS, MoneyMode.DOLLARS])
def test_money_is_dollars_with_currency_format_in_both_modes(out: Path, money: MoneyMode) -> None:
    columns = columns_of("sale_price_cents", "profit_cents")
    batch = frame(
        columns,
        {
            "sale_price_cents": [1234, 0, 99, 123456789, None],
            "profit_cents": [-5, -1234, 7, 0, -100000],
        },
    )
    export(out, columns, [batch], money=money)

    worksheet = openpyxl.load_workbook(out)["Records"]
    assert [cell.value for cell in worksheet[1]] == ["Sale Price", "Profit"]
    rows = list(worksheet.iter_rows(min_row=2))
    assert [row[0].value for row in rows] == [12.34, 0, 0.99, 1234567.89, None]
    assert [row[1].value for row in rows] == [-0.05, -12.34, 0.07, 0, -1000]
    for row in rows:
        for cell in row:
            if cell.value is not None:
                assert cell.data_type == "n"
                assert cell.number_format == "$#,##0.00"


def test_dates_and_timestamps_are_real_date_cells(out: Path) -> None:
    columns = columns_of("sale_date", "created_at", "qty")
    created = [
        dt.datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC),
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(2024, 2, 29, 0, 0, 1, tzinfo=UTC),
    ]
    batch = frame(
        columns,
        {
            "sale_date": [
                dt.date(2024, 2, 29),
                dt.date(1900, 3, 1),
                dt.date(2099, 12, 31),
                None,
            ],
            "created_at": created,
            "qty": [1, 2, 30000, None],
        },
    )
    export(out, columns, [batch])

    rows = list(openpyxl.load_workbook(out)["Records"].iter_rows(min_row=2))
    assert [row[0].value for row in rows] == [
        dt.datetime(2024, 2, 29),
        dt.datetime(1900, 3, 1),
        dt.datetime(2099, 12, 31),
        None,
    ]
    for row in rows[:3]:
        assert row[0].is_date
        assert row[0].number_format == "yyyy-mm-dd"
    for row, expected in zip(rows, created, strict=True):
        assert row[1].is_date
        assert row[1].number_format == "yyyy-mm-dd hh:mm:ss"
        # Excel has no time zones: the wall-clock time is the UTC one.
        difference = row[1].value - expected.replace(tzinfo=None)
        assert abs(difference) < dt.timedelta(milliseconds=1)
    assert [row[2].value for row in rows] == [1, 2, 30000, None]
    assert rows[0][2].data_type == "n"


def _cell_numbers(path: Path, sheet_file: str) -> list[float]:
    with zipfile.ZipFile(path) as archive:
        xml = archive.read(sheet_file).decode()
    return [float(value) for value in re.findall(r"<v>([^<]*)</v>", xml)]


def test_date_serials_match_xlsxwriter_write_datetime(tmp_path: Path) -> None:
    """The sink computes serials in Polars; they must be what write_datetime would store."""
    dates = [dt.date(1900, 1, 1), dt.date(1900, 2, 28), dt.date(1900, 3, 1), dt.date(2024, 2, 29)]
    stamps = [
        dt.datetime(1969, 12, 31, 23, 59, 59, 500000),
        dt.datetime(2024, 5, 1, 12, 34, 56, 789123),
        dt.datetime(2038, 1, 19, 3, 14, 7),
        dt.datetime(2024, 12, 31, 23, 59, 59, 999999),
    ]
    reference = tmp_path / "reference.xlsx"
    workbook = xlsxwriter.Workbook(str(reference))
    worksheet = workbook.add_worksheet()
    for row, (date, stamp) in enumerate(zip(dates, stamps, strict=True)):
        worksheet.write_datetime(row, 0, date)
        worksheet.write_datetime(row, 1, stamp)
    workbook.close()

    columns = columns_of("sale_date", "updated_at")
    produced = tmp_path / "produced.xlsx"
    batch = frame(
        columns,
        {"sale_date": dates, "updated_at": [stamp.replace(tzinfo=UTC) for stamp in stamps]},
    )
    export(produced, columns, [batch])

    expected = _cell_numbers(reference, "xl/worksheets/sheet1.xml")
    actual = _cell_numbers(produced, "xl/worksheets/sheet1.xml")
    assert actual == pytest.approx(expected, rel=0, abs=1e-10)


@pytest.mark.parametrize("formula", ["=1+1", "=cmd|' /C calc'!A0", '=HYPERLINK("http://x")'])
def test_text_starting_with_equals_stays_text(out: Path, formula: str) -> None:
    columns = columns_of("id", "item_name", "amazon_order_id")
    batch = frame(
        columns,
        {"id": [formula], "item_name": [formula], "amazon_order_id": ["+1-2"]},
    )
    export(out, columns, [batch])

    with zipfile.ZipFile(out) as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()
    row = openpyxl.load_workbook(out)["Records"][2]
    assert [cell.value for cell in row] == [formula, formula, "+1-2"]
    assert [cell.data_type for cell in row] == ["s", "s", "s"]


def test_hostile_text_round_trips_in_both_readers(out: Path) -> None:
    columns = columns_of("id", "item_name", "order_remark")
    batch = frame(
        columns,
        {
            "id": [f"id-{index}" for index in range(len(HOSTILE_TEXTS))],
            "item_name": HOSTILE_TEXTS,
            "order_remark": list(reversed(HOSTILE_TEXTS)),
        },
    )
    export(out, columns, [batch])

    expected = [
        [f"id-{index}", text, remark]
        for index, (text, remark) in enumerate(
            zip(HOSTILE_TEXTS, reversed(HOSTILE_TEXTS), strict=True)
        )
    ]
    assert sheet_values(out, "Records")[1:] == expected
    # python-calamine 0.9.1 decodes the _xHHHH_ escapes itself (openpyxl does not).
    calamine = CalamineWorkbook.from_path(str(out)).get_sheet_by_name("Records").to_python()
    assert calamine[1:] == expected


def test_nulls_and_empty_text_are_empty_cells(out: Path) -> None:
    columns = columns_of("id", "qty", "ebay_fees_cents", "sale_date", "service_remark")
    batch = frame(
        columns,
        {
            "id": ["a", "b"],
            "qty": [None, 1],
            "ebay_fees_cents": [None, 5],
            "sale_date": [None, dt.date(2024, 1, 1)],
            "service_remark": [None, ""],
        },
    )
    export(out, columns, [batch])

    with zipfile.ZipFile(out) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    # Row 2 holds only its id; row 3 no remark: empty cells are not written at all.
    assert re.search(r'<row r="2"[^>]*><c r="A2"[^>]*>(?:(?!</row>).)*</c></row>', xml)
    assert 'r="B2"' not in xml
    assert 'r="C2"' not in xml
    assert 'r="D2"' not in xml
    assert 'r="E2"' not in xml
    assert 'r="E3"' not in xml
    rows = sheet_values(out, "Records")
    assert rows[1] == ["a", None, None, None, None]
    assert rows[2] == ["b", 1, 0.05, dt.datetime(2024, 1, 1), None]


def test_rows_roll_over_to_numbered_sheets_in_order(out: Path) -> None:
    columns = columns_of("id", "qty", "profit_cents")
    ids = [f"r{index}" for index in range(8)]
    batches = [
        frame(
            columns,
            {
                "id": ids[start:stop],
                "qty": [1] * (stop - start),
                "profit_cents": list(range(start, stop)),
            },
        )
        for start, stop in [(0, 2), (2, 7), (7, 8)]
    ]
    report = export(out, columns, batches, rows_per_sheet=3)

    assert report.sheets == 3
    workbook = openpyxl.load_workbook(out)
    assert workbook.sheetnames == ["Records", "Records (2)", "Records (3)"]
    header = ["ID", "Qty", "Profit"]
    read_ids: list[Any] = []
    for name, expected_rows, last_row in [
        ("Records", 3, 4),
        ("Records (2)", 3, 4),
        ("Records (3)", 2, 3),
    ]:
        worksheet = workbook[name]
        values = sheet_values(out, name)
        assert values[0] == header
        assert len(values) == expected_rows + 1
        assert worksheet["A1"].font.bold
        assert worksheet.freeze_panes == "A2"
        assert worksheet.auto_filter.ref == f"A1:C{last_row}"
        read_ids.extend(row[0] for row in values[1:])
    assert read_ids == ids

    calamine = CalamineWorkbook.from_path(str(out))
    calamine_ids = [
        row[0]
        for name in calamine.sheet_names
        for row in calamine.get_sheet_by_name(name).to_python()[1:]
    ]
    assert calamine_ids == ids


def test_full_last_sheet_does_not_start_an_empty_one(out: Path) -> None:
    columns = columns_of("id")
    report = export(
        out,
        columns,
        [frame(columns, {"id": ["a", "b"]}), frame(columns, {"id": ["c", "d"]})],
        rows_per_sheet=2,
    )
    assert report.sheets == 2
    assert openpyxl.load_workbook(out).sheetnames == ["Records", "Records (2)"]


def test_export_without_rows_has_a_header_only_sheet(out: Path) -> None:
    columns = columns_of("id", "sale_price_cents")
    report = export(out, columns, [frame(columns, {"id": [], "sale_price_cents": []})])

    assert report.sheets == 1
    worksheet = openpyxl.load_workbook(out)["Records"]
    assert sheet_values(out, "Records") == [["ID", "Sale Price"]]
    assert worksheet.auto_filter.ref == "A1:B1"
    assert worksheet.freeze_panes == "A2"


def test_overlong_text_is_cut_counted_and_warned(out: Path) -> None:
    columns = columns_of("id", "item_name", "order_remark")
    long_text = "x" * 40_000
    batch = frame(
        columns,
        {
            "id": ["a", "b"],
            "item_name": [long_text, "short"],
            "order_remark": ["y" * 32_767, None],
        },
    )
    report = export(out, columns, [batch])

    assert report.truncated_cells == 1
    assert report.warnings == [
        "1 text cells were longer than Excel's 32,767-character limit and were cut"
    ]
    rows = sheet_values(out, "Records")
    assert rows[1] == ["a", "x" * 32_767, "y" * 32_767]
    assert rows[2] == ["b", "short", None]


def test_cut_counts_utf16_units_like_excel(out: Path) -> None:
    """Excel's limit is in UTF-16 units: an emoji counts twice."""
    columns = columns_of("item_name")
    batch = frame(columns, {"item_name": ["😀" * 20_000, "😀" * 16_383]})
    report = export(out, columns, [batch])

    assert report.truncated_cells == 1
    calamine = CalamineWorkbook.from_path(str(out)).get_sheet_by_name("Records").to_python()
    assert [row[0] for row in calamine[1:]] == ["😀" * 16_383, "😀" * 16_383]


def _cells(path: Path, sheet: str = "sheet1") -> dict[str, str]:
    """Each cell's XML in a sheet, by reference (A1, B2, ...), exactly as stored."""
    xml = zipfile.ZipFile(path).read(f"xl/worksheets/{sheet}.xml").decode("utf-8")
    return {match.group(1): match.group(0) for match in CELL_XML.finditer(xml)}


def _xlsxwriter_sheet(path: Path, columns: Sequence[OutputColumn], rows: list[list[Any]]) -> None:
    """The same cells written by xlsxwriter's own public methods: the oracle for the XML."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    header = workbook.add_format({"bold": True, "bg_color": "#D9D9D9", "pattern": 1})
    money = workbook.add_format({"num_format": "$#,##0.00"})
    sheet = workbook.add_worksheet("Records")
    for col, output in enumerate(columns):
        sheet.write_string(0, col, output.title, header)
    for row_number, values in enumerate(rows, start=1):
        for col, (output, value) in enumerate(zip(columns, values, strict=True)):
            if value is None or value == "":
                continue
            if output.kind is ColumnKind.TEXT:
                sheet.write_string(row_number, col, value)
            elif output.is_money:
                sheet.write_number(row_number, col, value / 100, money)
            else:
                sheet.write_number(row_number, col, value)
    workbook.close()


def test_cells_are_the_xml_xlsxwriter_writes(tmp_path: Path) -> None:
    """Text cells byte for byte as xlsxwriter's write_string writes them (escapes, entities,
    preserved spaces, header style); numbers the same values in the same style."""
    texts = [text for text in HOSTILE_TEXTS if not text.startswith("<r>")]
    columns = columns_of("item_name", "qty", "sale_price_cents")
    rows = [[text, index, index * 101 - 300] for index, text in enumerate(texts)]
    rows += [["", None, None], [None, 7, 12_345_678_901]]
    ours, theirs = tmp_path / "ours.xlsx", tmp_path / "theirs.xlsx"
    export(
        ours,
        columns,
        [frame(columns, {c.name: [r[i] for r in rows] for i, c in enumerate(columns)})],
    )
    _xlsxwriter_sheet(theirs, columns, rows)

    our_cells, their_cells = _cells(ours), _cells(theirs)
    assert our_cells.keys() == their_cells.keys()
    for reference, their_xml in their_cells.items():
        if 't="inlineStr"' in their_xml:
            assert our_cells[reference] == their_xml
        else:
            ours_match, theirs_match = (
                NUMBER_CELL.match(our_cells[reference]),
                NUMBER_CELL.match(their_xml),
            )
            assert ours_match and theirs_match, reference
            assert ours_match.group("style") == theirs_match.group("style")
            assert float(ours_match.group("value")) == float(theirs_match.group("value"))


@pytest.mark.parametrize("text", ["<r>&</r>", "<r><t>fake</t></r>", "<r>x", "</r>"])
def test_text_that_looks_like_rich_text_markup_stays_text(out: Path, text: str) -> None:
    """xlsxwriter copies a string shaped `<r>...</r>` into the sheet as markup; a record's
    text must never reach the XML unescaped."""
    columns = columns_of("id", "item_name")
    export(out, columns, [frame(columns, {"id": ["a"], "item_name": [text]})])
    assert sheet_values(out, "Records")[1] == ["a", text]
    calamine = CalamineWorkbook.from_path(str(out)).get_sheet_by_name("Records").to_python()
    assert calamine[1] == ["a", text]


def test_rows_that_do_not_fit_the_sheet_raise(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row xlsxwriter's dimension check refuses is an error, never a silently lost row."""
    columns = columns_of("id")
    sink = XlsxSink(out, SinkOptions(columns=columns))
    monkeypatch.setattr(Worksheet, "_check_dimensions", lambda *args, **kwargs: -1)
    with pytest.raises(RuntimeError, match="does not fit sheet 'Records'"):
        sink.write(frame(columns, {"id": ["a"]}))
    sink.abort()
    assert not out.exists()


def test_abort_leaves_no_file_and_no_temp_files(out: Path) -> None:
    columns = columns_of("id")
    sink = XlsxSink(out, SinkOptions(columns=columns, rows_per_sheet=1))
    sink.write(frame(columns, {"id": ["a", "b", "c"]}))
    temp_files = [Path(sheet.row_data_filename) for sheet in sink._sheets]
    handles = [sheet.row_data_fh for sheet in sink._sheets]
    assert len(temp_files) == 3
    assert all(path.exists() for path in temp_files)

    sink.abort()
    sink.abort()

    assert not out.exists()
    assert not any(path.exists() for path in temp_files)
    assert not scratch_folder_for(out).exists()
    assert all(handle.closed for handle in handles)
    with pytest.raises(RuntimeError):
        sink.write(frame(columns, {"id": ["d"]}))


def test_temporary_files_go_to_the_scratch_folder_beside_the_file(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every temporary file xlsxwriter makes (each sheet's rows, then the XML parts it
    zips) is created in `<file>.d/`, never in the system temp folder, and the folder is gone
    once the workbook is written (the spy only records the real calls' paths)."""
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    created: list[Path] = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        descriptor, name = real_mkstemp(*args, **kwargs)
        created.append(Path(name))
        return descriptor, name

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    columns = columns_of("id")
    sink = XlsxSink(out, SinkOptions(columns=columns, rows_per_sheet=2))
    sink.write(frame(columns, {"id": ["a", "b", "c"]}))
    assert sorted(p.name for p in scratch_folder_for(out).iterdir()) == sorted(
        Path(sheet.row_data_filename).name for sheet in sink._sheets
    )
    sink.close()
    assert len(created) > 2  # the two sheets' rows and the parts of the package
    assert {path.parent for path in created} == {scratch_folder_for(out)}
    assert not scratch_folder_for(out).exists()
    assert list(system_temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.xlsx", "system-temp"]


def test_batch_of_the_wrong_shape_is_refused(out: Path) -> None:
    columns = columns_of("id", "qty")
    sink = XlsxSink(out, SinkOptions(columns=columns))
    with pytest.raises(ValueError, match="batch columns"):
        sink.write(pl.DataFrame({"qty": [1], "id": ["a"]}))
    with pytest.raises(ValueError, match="'qty' is String"):
        sink.write(pl.DataFrame({"id": ["a"], "qty": ["1"]}))
    sink.abort()


@pytest.mark.parametrize("rows_per_sheet", [0, 1_048_576])
def test_rows_per_sheet_must_fit_excel(out: Path, rows_per_sheet: int) -> None:
    with pytest.raises(ValueError, match="rows_per_sheet"):
        XlsxSink(out, SinkOptions(columns=columns_of("id"), rows_per_sheet=rows_per_sheet))


def test_xlsx_money_dates_and_text(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = url_of(pg_records)
    path, meta = exporting.export(pg_records, tmp_path, "book", format="xlsx")
    sheet = openpyxl.load_workbook(path, read_only=True)["Records"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert header[0] == "ID" and header[-1] == "Profit"
    expected = oracle_rows(url)
    assert len(body) == len(expected) == meta["row_count"]
    money_positions = [5, 6, 7, 8, 9, 10, 11, 14, 15]
    for ours, theirs in zip(body, expected, strict=True):
        assert ours[0] == theirs[0]
        assert decode_excel(ours[3] or "") == theirs[3][:32_767]
        assert ours[2].date() == theirs[2]
        for position in money_positions:
            if theirs[position] is None:
                assert ours[position] is None
            else:
                assert round(ours[position] * 100) == theirs[position]
