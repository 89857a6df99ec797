"""The export engine against PostgreSQL's own answers: COPY, row_to_json and plain SELECTs."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy.engine import Engine

from record_exports.database import (
    DatabaseBusyError,
    DatabaseSettingError,
    DatabaseTarget,
    create_engine_for,
    parse_database_url,
)
from record_exports.engine import default_batches, run_export
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams, parse_export_params
from record_exports.query import RecordFilters, build_query
from record_exports.schema import create_schema
from record_exports.seed import seed_records
from record_exports.sqlite_reader import iter_sqlite_batches
from tests.factories import (
    HOSTILE,
    NULLABLE_MONEY,
    add_account,
    copy_csv,
    insert_order_remarks,
    insert_records,
    oracle_copy_csv,
    oracle_ndjson,
    oracle_rows,
    record,
    status_null_matrix,
)
from tests.sqlite_lock import sqlite_write_lock

EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


# The newest records of `populate`: read first, with every nullable column NULL.
NEWEST_TIME = dt.datetime(2027, 1, 1, 0, 0, 0, 123_456, tzinfo=dt.UTC)
NULL_FIRST_ROWS = 12
# Batches of the SQLite reader in the tests that compare it with PostgreSQL: the first
# batch is all NULL in the nullable columns and the second starts among those rows.
SMALL_BATCH_ROWS = NULL_FIRST_ROWS - 5


def populate(engine: Engine) -> None:
    """Every status × null combination, hostile text, ties, soft deletes, seeded volume, and
    newest records (read first) with every nullable column NULL and microsecond times."""
    first = add_account(engine, "ACC1")
    second = add_account(engine, "ACC2")
    rows = status_null_matrix(first)
    rows += [
        record(
            first,
            2_000 + number,
            amazon_order_id=None,
            created_at=NEWEST_TIME - dt.timedelta(days=1, microseconds=number),
            updated_at=NEWEST_TIME + dt.timedelta(microseconds=number * 7),
            **dict.fromkeys(NULLABLE_MONEY),
        )
        for number in range(NULL_FIRST_ROWS)
    ]
    base = len(rows)
    tie_time = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    for offset, text in enumerate(HOSTILE):
        rows.append(record(second, base + offset, item_name=text, amazon_order_id=text[:100]))
    rows += [
        record(first, 900, updated_at=tie_time),
        record(first, 901, updated_at=tie_time),
        record(second, 902, updated_at=tie_time, sale_price_cents=0, ebay_fees_cents=5),
        record(first, 903, deleted_at=tie_time, item_name="deleted, never exported"),
    ]
    insert_records(engine, rows)
    insert_order_remarks(engine, {rows[0]["id"]: '=HYPERLINK("x")', rows[1]["id"]: "plain"})
    seed_records(engine, 1_500, 3, seed=7)


@pytest.fixture
def pg_records(pg_engine: Engine, pg_target: DatabaseTarget) -> DatabaseTarget:
    populate(pg_engine)
    return pg_target


def small_batches(rows: int) -> Any:
    """A batch source that re-slices the real read, so every sink sees many batches."""

    def source(
        target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        for batch in default_batches(target, params, account_ids):
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)

    return source


def export(
    target: DatabaseTarget, tmp_path: Path, name: str, **raw: Any
) -> tuple[Path, dict[str, Any]]:
    params = parse_export_params(raw)
    destination = tmp_path / params.file_name(name)
    result = run_export(target, params, destination, run_id="test-run", batches=small_batches(97))
    return destination, result.metadata()


def decode_excel(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    return EXCEL_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)


def test_default_csv_is_byte_identical_to_copy(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, meta = export(pg_records, tmp_path, "all")
    expected = oracle_copy_csv(pg_records.url.render_as_string(hide_password=False))
    assert path.read_bytes() == expected
    url = pg_records.url.render_as_string(hide_password=False)
    assert meta["row_count"] == len(oracle_rows(url)) > 1_500


def test_dollars_csv_matches_numeric_cast(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, _ = export(pg_records, tmp_path, "dollars", money="dollars")
    url = pg_records.url.render_as_string(hide_password=False)
    assert path.read_bytes() == oracle_copy_csv(url, money="dollars")
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert "profit" in header.split(",") and "profit_cents" not in header


@pytest.mark.parametrize("money", ["cents", "dollars"])
def test_ndjson_equals_row_to_json(pg_records: DatabaseTarget, tmp_path: Path, money: str) -> None:
    path, _ = export(pg_records, tmp_path, f"nd-{money}", format="ndjson", money=money)
    url = pg_records.url.render_as_string(hide_password=False)
    ours = path.read_bytes()
    assert ours == oracle_ndjson(url, money)
    if money == "dollars":
        first = ours.split(b"\n", 1)[0].decode()
        assert re.search(r'"profit":-?\d+\.\d\d[,}]', first)


@pytest.mark.parametrize("money", ["cents", "dollars"])
def test_json_document_holds_the_ndjson_records(
    pg_records: DatabaseTarget, tmp_path: Path, money: str
) -> None:
    json_path, _ = export(pg_records, tmp_path, "doc", format="json", money=money)
    nd_path, _ = export(pg_records, tmp_path, "lines", format="ndjson", money=money)
    document = json.loads(json_path.read_bytes(), parse_float=decimal.Decimal)
    lines = [
        json.loads(line, parse_float=decimal.Decimal)
        for line in nd_path.read_text(encoding="utf-8").splitlines()
    ]
    assert list(document) == ["records"]
    assert document["records"] == lines


def test_parquet_types_and_values_match_oracle(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = pg_records.url.render_as_string(hide_password=False)
    cents_path, _ = export(pg_records, tmp_path, "cents", format="parquet")
    frame = pl.read_parquet(cents_path)
    assert frame.schema["profit_cents"] == pl.Int64
    assert frame.schema["sale_date"] == pl.Date
    assert frame.rows() == oracle_rows(url)

    dollars_path, _ = export(pg_records, tmp_path, "dollars", format="parquet", money="dollars")
    dollars = pl.read_parquet(dollars_path)
    assert dollars.schema["profit"] == pl.Decimal(18, 2)
    assert dollars.rows() == oracle_rows(url, money="dollars")


def test_xlsx_money_dates_and_text(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = pg_records.url.render_as_string(hide_password=False)
    path, meta = export(pg_records, tmp_path, "book", format="xlsx")
    sheet = openpyxl.load_workbook(path, read_only=True)["Records"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert header[0] == "Id" and header[-1] == "Profit"
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


def test_hostile_text_round_trips_in_every_format(
    pg_records: DatabaseTarget, tmp_path: Path
) -> None:
    wanted = sorted(text for text in HOSTILE)
    columns = ["id", "item_name"]
    found: dict[str, list[str]] = {}
    csv_path, _ = export(
        pg_records, tmp_path, "h", format="csv", account_codes=["ACC2"], columns=columns
    )
    found["csv"] = pl.read_csv(csv_path, infer_schema=False)["item_name"].fill_null("").to_list()
    nd_path, _ = export(
        pg_records, tmp_path, "h", format="ndjson", account_codes=["ACC2"], columns=columns
    )
    found["ndjson"] = [
        json.loads(line)["item_name"] for line in nd_path.read_text("utf-8").splitlines()
    ]
    js_path, _ = export(
        pg_records, tmp_path, "h", format="json", account_codes=["ACC2"], columns=columns
    )
    found["json"] = [row["item_name"] for row in json.loads(js_path.read_bytes())["records"]]
    pq_path, _ = export(
        pg_records, tmp_path, "h", format="parquet", account_codes=["ACC2"], columns=columns
    )
    found["parquet"] = pl.read_parquet(pq_path)["item_name"].to_list()
    xl_path, meta = export(
        pg_records, tmp_path, "h", format="xlsx", account_codes=["ACC2"], columns=columns
    )
    sheet = openpyxl.load_workbook(xl_path)["Records"]
    cells = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells if cell.value is not None)
    found["xlsx"] = [decode_excel(cell.value or "") for cell in cells]
    long_text = "y" * 40_000
    for name, values in found.items():
        present = [value for value in values if value in wanted or value == long_text[:32_767]]
        expected = (
            wanted
            if name != "xlsx"
            else sorted(text if len(text) <= 32_767 else text[:32_767] for text in wanted)
        )
        assert sorted(present) == expected, name
    assert meta["truncated_cells"] == sum(len(text) > 32_767 for text in found["parquet"]) >= 1


def test_filters_match_the_same_filters_in_sql(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = pg_records.url.render_as_string(hide_password=False)
    path, meta = export(
        pg_records,
        tmp_path,
        "filtered",
        account_codes=["ACC1", "ACC3"],
        statuses=["RETURN_CLOSED", "successful"],
        sale_date_from="2026-03-01",
        sale_date_to="2026-03-02",
    )
    where = (
        "r.account_id IN (SELECT id FROM accounts WHERE account_code IN ('ACC1', 'ACC3'))"
        " AND r.status IN ('RETURN_CLOSED', 'SUCCESSFUL')"
        " AND r.sale_date BETWEEN DATE '2026-03-01' AND DATE '2026-03-02'"
    )
    expected = oracle_copy_csv(url, where=where)
    assert path.read_bytes() == expected
    assert meta["row_count"] > 10
    assert meta["filters"]["statuses"] == ["RETURN_CLOSED", "SUCCESSFUL"]


def test_selected_columns_remarks_and_timestamps(
    pg_records: DatabaseTarget, tmp_path: Path
) -> None:
    path, _ = export(
        pg_records,
        tmp_path,
        "cols",
        format="ndjson",
        columns=["account_code", "id", "order_remark", "created_at", "profit_cents"],
        include_remarks=True,
        account_codes=["ACC1"],
    )
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert list(rows[0]) == ["account_code", "id", "order_remark", "created_at", "profit_cents"]
    assert {row["account_code"] for row in rows} == {"ACC1"}
    remarks = {row["order_remark"] for row in rows}
    assert {'=HYPERLINK("x")', "plain", None} <= remarks
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["created_at"]) for r in rows
    )


def test_empty_selection_writes_headers(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = pg_records.url.render_as_string(hide_password=False)
    path, meta = export(
        pg_records, tmp_path, "none", sale_date_from="2001-01-01", sale_date_to="2001-01-02"
    )
    assert meta["row_count"] == 0
    assert path.read_bytes() == oracle_copy_csv(url, where="FALSE")
    json_path, _ = export(pg_records, tmp_path, "none", format="json", sale_date_to="2001-01-02")
    assert json.loads(json_path.read_bytes()) == {"records": []}
    xlsx_path, _ = export(pg_records, tmp_path, "none", format="xlsx", sale_date_to="2001-01-02")
    assert openpyxl.load_workbook(xlsx_path)["Records"].max_row == 1


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_csv_holds_the_same_bytes(
    pg_records: DatabaseTarget, tmp_path: Path, compression: str
) -> None:
    plain, _ = export(pg_records, tmp_path, "plain")
    packed, meta = export(pg_records, tmp_path, "packed", compression=compression, bom=True)
    assert packed.name.endswith({"gzip": ".csv.gz", "zstd": ".csv.zst"}[compression])
    with pa.input_stream(str(packed), compression=compression) as stream:
        assert stream.read() == b"\xef\xbb\xbf" + plain.read_bytes()
    assert meta["bytes"] == packed.stat().st_size < plain.stat().st_size


@pytest.mark.parametrize(
    ("export_format", "compression"),
    [
        *(
            (text, packing)
            for text in ("csv", "ndjson", "json")
            for packing in ("none", "gzip", "zstd")
        ),
        ("parquet", "none"),
    ],
)
def test_manifest_digest_is_that_of_the_file(
    pg_records: DatabaseTarget, tmp_path: Path, export_format: str, compression: str
) -> None:
    """Text formats hash while writing, Parquet reads its file back: both give the file's."""
    path, meta = export(
        pg_records, tmp_path, "digest", format=export_format, compression=compression
    )
    data = path.read_bytes()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["bytes"] == len(data)
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert (manifest["bytes"], manifest["sha256"]) == (meta["bytes"], meta["sha256"])


def test_excel_safe_prefixes_formula_text_only(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, _ = export(
        pg_records,
        tmp_path,
        "safe",
        excel_safe=True,
        account_codes=["ACC2"],
        columns=["item_name", "profit_cents"],
    )
    values = pl.read_csv(path, infer_schema=False)
    items = set(values["item_name"].fill_null("").to_list())
    assert {"'=cmd|' /C calc'!A0", "'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tTab"} <= items
    assert 'Quote "inside", comma' in items
    assert any(value.startswith("-") for value in values["profit_cents"].to_list())


def test_manifest_describes_the_file(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, meta = export(pg_records, tmp_path, "manifested", format="parquet", money="dollars")
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    assert manifest["bytes"] == path.stat().st_size
    assert manifest["row_count"] == meta["row_count"] == pl.read_parquet(path).height
    assert manifest["format"] == "parquet" and manifest["money"] == "dollars"
    assert manifest["columns"][-1] == "profit"
    assert manifest["run_id"] == "test-run"
    assert manifest["created_at"].endswith("Z")
    assert set(manifest["filters"]) == {
        "account_codes",
        "statuses",
        "sale_date_from",
        "sale_date_to",
    }


class InjectedFailure(RuntimeError):
    pass


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "json", "xlsx", "parquet"])
def test_failure_mid_write_leaves_no_file(
    pg_records: DatabaseTarget, tmp_path: Path, export_format: str
) -> None:
    def failing(
        target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        for number, batch in enumerate(small_batches(50)(target, params, account_ids)):
            if number == 3:
                raise InjectedFailure("database went away")
            yield batch

    out = tmp_path / "out"
    params = parse_export_params({"format": export_format})
    with pytest.raises(InjectedFailure):
        run_export(pg_records, params, out / f"x.{export_format}", batches=failing)
    assert list(out.iterdir()) == []


def test_unknown_account_is_rejected_before_reading(
    pg_records: DatabaseTarget, tmp_path: Path
) -> None:
    with pytest.raises(ExportInputError) as caught:
        export(pg_records, tmp_path, "x", account_codes=["ACC1", "NOPE"])
    assert caught.value.field == "account_codes" and "NOPE" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def sqlite_reader_batches(rows: int) -> Any:
    """The real SQLite reader with `rows`-row batches, so the first batch is all NULL in
    the nullable columns (`NULL_FIRST_ROWS` newest records) and boundaries fall inside."""

    def source(
        target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        filters = RecordFilters.from_params(params, account_ids)
        query = build_query(params.columns, params.include_remarks, filters, is_postgresql=False)
        return iter_sqlite_batches(target, query, batch_rows=rows)

    return source


@pytest.fixture
def lite_records(sqlite_url: str) -> DatabaseTarget:
    """The records of `populate` in a SQLite file."""
    lite = parse_database_url(sqlite_url)
    engine = create_engine_for(lite)
    create_schema(engine)
    populate(engine)
    engine.dispose()
    return lite


def lite_export(target: DatabaseTarget, tmp_path: Path, name: str, **raw: Any) -> Path:
    params = parse_export_params(raw)
    destination = tmp_path / params.file_name(name)
    batches = sqlite_reader_batches(SMALL_BATCH_ROWS)
    run_export(target, params, destination, run_id="test-run", batches=batches)
    return destination


def test_sqlite_export_equals_postgres_copy(
    pg_records: DatabaseTarget, lite_records: DatabaseTarget, tmp_path: Path
) -> None:
    """The embedded default computes the same file as PostgreSQL, for the same records,
    read in the reader's default batches and in small ones (first batch all NULL)."""
    url = pg_records.url.render_as_string(hide_password=False)
    for money in ("cents", "dollars"):
        path, _ = export(lite_records, tmp_path, f"lite-{money}", money=money)
        assert path.read_bytes() == oracle_copy_csv(url, money=money)
        small = lite_export(lite_records, tmp_path, f"lite-small-{money}", money=money)
        assert small.read_bytes() == oracle_copy_csv(url, money=money)
    nd_path = lite_export(lite_records, tmp_path, "lite", format="ndjson", money="dollars")
    assert nd_path.read_bytes() == oracle_ndjson(url, "dollars")
    pq_path = lite_export(lite_records, tmp_path, "lite", format="parquet")
    assert pl.read_parquet(pq_path).rows() == oracle_rows(url)


def test_sqlite_text_timestamps_and_remarks_equal_postgres(
    pg_records: DatabaseTarget, lite_records: DatabaseTarget, tmp_path: Path
) -> None:
    """Columns the default set lacks: timestamps with microseconds, account codes, and remarks
    (NULL, empty and hostile), against PostgreSQL formatting them itself."""
    url = pg_records.url.render_as_string(hide_password=False)
    utc = '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''
    select = (
        "SELECT r.id::text AS id, a.account_code, r.item_name, r.amazon_order_id,"
        f" to_char(r.created_at AT TIME ZONE 'UTC', {utc}) AS created_at,"
        f" to_char(r.updated_at AT TIME ZONE 'UTC', {utc}) AS updated_at,"
        " o.content AS order_remark, s.content AS service_remark"
        " FROM bookkeeping_records r JOIN accounts a ON a.id = r.account_id"
        " LEFT JOIN order_remarks o ON o.record_id = r.id"
        " LEFT JOIN service_remarks s ON s.record_id = r.id"
        " WHERE r.deleted_at IS NULL ORDER BY r.updated_at DESC, r.id DESC"
    )
    columns = [
        "id",
        "account_code",
        "item_name",
        "amazon_order_id",
        "created_at",
        "updated_at",
        "order_remark",
        "service_remark",
    ]
    path = lite_export(lite_records, tmp_path, "wide", columns=columns, include_remarks=True)
    expected = copy_csv(url, select)
    assert path.read_bytes() == expected
    assert b".123456Z" in expected and b"y" * 40_000 in expected and "🎉".encode() in expected


def test_sqlite_excel_sheet_equals_postgres(
    pg_records: DatabaseTarget, lite_records: DatabaseTarget, tmp_path: Path
) -> None:
    """Same cells from both databases: every part of the workbook but its creation time.
    Both read in batches of the same size: column widths come from the first batch."""
    ours = lite_export(lite_records, tmp_path, "lite", format="xlsx")
    params = parse_export_params({"format": "xlsx"})
    theirs = tmp_path / "pg.xlsx"
    run_export(pg_records, params, theirs, batches=small_batches(SMALL_BATCH_ROWS))
    with zipfile.ZipFile(ours) as lite_book, zipfile.ZipFile(theirs) as pg_book:
        names = sorted(set(lite_book.namelist()) - {"docProps/core.xml"})
        assert names == sorted(set(pg_book.namelist()) - {"docProps/core.xml"})
        assert "xl/worksheets/sheet1.xml" in names
        for name in names:
            assert lite_book.read(name) == pg_book.read(name), name


def test_sqlite_empty_selection_writes_headers(
    pg_records: DatabaseTarget, lite_records: DatabaseTarget, tmp_path: Path
) -> None:
    url = pg_records.url.render_as_string(hide_password=False)
    path = lite_export(lite_records, tmp_path, "none", sale_date_to="2001-01-02")
    assert path.read_bytes() == oracle_copy_csv(url, where="FALSE")
    xlsx_path = lite_export(lite_records, tmp_path, "no", format="xlsx", sale_date_to="2001-01-02")
    assert openpyxl.load_workbook(xlsx_path)["Records"].max_row == 1


@pytest.mark.parametrize("export_format", ["csv", "xlsx"])
def test_sqlite_locked_by_a_writer_leaves_no_file(
    lite_records: DatabaseTarget, tmp_path: Path, export_format: str
) -> None:
    def locked_out(
        target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        filters = RecordFilters.from_params(params, account_ids)
        query = build_query(params.columns, params.include_remarks, filters, is_postgresql=False)
        return iter_sqlite_batches(target, query, busy_timeout_ms=100)

    out = tmp_path / "out"
    params = parse_export_params({"format": export_format})
    path = Path(lite_records.url.database or "")
    with sqlite_write_lock(path), pytest.raises(DatabaseBusyError) as caught:
        run_export(lite_records, params, out / f"x.{export_format}", batches=locked_out)
    assert "RECORDS_DATABASE_URL" in str(caught.value)
    assert list(out.iterdir()) == []


def test_missing_sqlite_file_is_neither_created_nor_exported(tmp_path: Path) -> None:
    target = parse_database_url(f"sqlite:///{tmp_path / 'records.db'}")
    params = parse_export_params({"account_codes": ["ACC1"]})
    with pytest.raises(DatabaseSettingError) as caught:
        run_export(target, params, tmp_path / "out" / "x.csv")
    assert "does not exist" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
