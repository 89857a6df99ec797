"""The SQLite read path: ADBC batches with each column's type and NULLs whatever the first
rows hold, checked against Python's own `sqlite3` reading the stored values."""

from __future__ import annotations

import datetime as dt
import sqlite3
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy.engine import Engine

from record_exports.columns import ALL_COLUMNS, COLUMN_TYPES, resolve_columns
from record_exports.database import (
    DatabaseBusyError,
    DatabaseSettingError,
    DatabaseTarget,
    create_engine_for,
    parse_database_url,
)
from record_exports.engine import run_export
from record_exports.errors import ExportFailedError
from record_exports.params import ExportParams, parse_export_params
from record_exports.query import RecordFilters, build_query
from record_exports.schema import create_schema
from record_exports.sqlite_reader import iter_sqlite_batches
from tests.factories import (
    BASE_TIME,
    add_account,
    copy_csv,
    insert_order_remarks,
    insert_records,
    oracle_copy_csv,
    oracle_ndjson,
    oracle_rows,
    record,
)
from tests.record_exports.exporting import (
    SMALL_BATCH_ROWS,
    export,
    populate,
    small_batches,
    url_of,
)
from tests.sqlite_lock import sqlite_write_lock

NULLABLE = [
    "amazon_order_id",
    "ebay_fees_cents",
    "amazon_price_cents",
    "amazon_tax_cents",
    "amazon_shipping_cents",
    "return_label_cost_cents",
]
COLUMNS = ["id", *NULLABLE, "item_name", "sale_date", "created_at", "updated_at", "order_remark"]


def sqlite_file(url: str) -> Path:
    return Path(parse_database_url(url).url.database or "")


@pytest.fixture
def lite(sqlite_url: str) -> tuple[DatabaseTarget, Engine]:
    target = parse_database_url(sqlite_url)
    engine = create_engine_for(target)
    create_schema(engine)
    return target, engine


def read(
    target: DatabaseTarget, columns: Sequence[str], batch_rows: int, **kwargs: Any
) -> list[pa.RecordBatch]:
    query = build_query(
        resolve_columns(columns, include_remarks=True),
        True,
        RecordFilters(),
        is_postgresql=False,
    )
    return list(iter_sqlite_batches(target, query, batch_rows=batch_rows, **kwargs))


def stored_rows(target: DatabaseTarget, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The same selection read by Python's `sqlite3`: stored values, in export order."""
    names = {
        "order_remark": "o.content",
        "service_remark": "s.content",
    }
    selected = ", ".join(names.get(name, f"r.{name}") for name in columns)
    sql = (
        f"SELECT {selected} FROM bookkeeping_records r"
        " LEFT JOIN order_remarks o ON o.record_id = r.id"
        " LEFT JOIN service_remarks s ON s.record_id = r.id"
        " WHERE r.deleted_at IS NULL ORDER BY r.updated_at DESC, r.id DESC"
    )
    with closing(sqlite3.connect(target.url.database or "")) as connection:
        return connection.execute(sql).fetchall()


def batch_rows_of(batches: list[pa.RecordBatch]) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for batch in batches for row in batch.to_pylist()]


def test_all_null_first_batch_keeps_every_type_and_null(
    lite: tuple[DatabaseTarget, Engine],
) -> None:
    """The newest rows (read first) have every nullable column NULL and no remark; text,
    money and remarks arrive later. Empty text stays empty text, not NULL."""
    target, engine = lite
    account = add_account(engine, "ACC1")
    rows = []
    for number in range(11):
        late = number >= 5  # higher numbers are newer, so they come first
        nulls = dict.fromkeys(NULLABLE) if late else {}
        text = {"amazon_order_id": "" if number == 2 else f"112-{number}"}
        rows.append(record(account, number, **(nulls or text)))
    insert_records(engine, rows)
    insert_order_remarks(engine, {rows[0]["id"]: "first remark", rows[1]["id"]: ""})
    engine.dispose()

    batches = read(target, COLUMNS, batch_rows=3)
    assert [batch.num_rows for batch in batches] == [3, 3, 3, 2]
    assert batches[0].column("amazon_order_id").null_count == 3
    assert batches[0].column("ebay_fees_cents").null_count == 3
    for batch in batches:
        assert batch.schema.names == COLUMNS
        for name in COLUMNS:
            wanted = COLUMN_TYPES[ALL_COLUMNS[name]].sqlite_arrow
            assert batch.schema.field(name).type == wanted, name
    assert batch_rows_of(batches) == stored_rows(target, COLUMNS)
    amazon_ids = [value for batch in batches for value in batch.column(1).to_pylist()]
    assert amazon_ids[:6] == [None] * 6 and "" in amazon_ids


def test_batch_boundaries_long_text_emoji_and_microseconds(
    lite: tuple[DatabaseTarget, Engine],
) -> None:
    target, engine = lite
    account = add_account(engine, "ACC1")
    texts = ["y" * 40_000, "emoji 🎉 ünïcödé", 'quote " and\nnewline', "", "x" * 32_768]
    rows = [
        record(
            account,
            number,
            item_name=texts[number % len(texts)],
            created_at=BASE_TIME + dt.timedelta(microseconds=number * 1_000_001),
            updated_at=BASE_TIME + dt.timedelta(seconds=number // 2, microseconds=number),
        )
        for number in range(17)
    ]
    insert_records(engine, rows)
    engine.dispose()
    for batch_rows in (1, 2, 16, 17, 1_000):
        batches = read(target, COLUMNS, batch_rows=batch_rows)
        assert sum(batch.num_rows for batch in batches) == 17
        assert max(batch.num_rows for batch in batches) == min(batch_rows, 17)
        assert batch_rows_of(batches) == stored_rows(target, COLUMNS)
    created = {value for batch in batches for value in batch.column("created_at").to_pylist()}
    assert "2026-03-01 12:00:16.000016" in created


def test_a_value_of_the_wrong_type_names_its_column(
    lite: tuple[DatabaseTarget, Engine],
) -> None:
    """Money is an integer; text in a money column fails the read with the column's name,
    whether it is in the first batch (typed from it) or after it."""
    target, engine = lite
    account = add_account(engine, "ACC1")
    insert_records(engine, [record(account, number) for number in range(6)])
    engine.dispose()
    with closing(sqlite3.connect(target.url.database or "")) as connection:
        connection.execute(
            "UPDATE bookkeeping_records SET ebay_fees_cents = 'twelve' WHERE id = ?",
            (record(account, 0)["id"],),
        )
        connection.commit()
    for batch_rows in (2, 100):  # the oldest row comes last: after, then in, the first batch
        with pytest.raises(ExportFailedError) as caught:
            read(target, COLUMNS, batch_rows=batch_rows)
        assert "column ebay_fees_cents" in str(caught.value)


def test_missing_file_is_bad_input_and_is_not_created(tmp_path: Path) -> None:
    target = parse_database_url(f"sqlite:///{tmp_path / 'records.db'}")
    with pytest.raises(DatabaseSettingError) as caught:
        read(target, ["id"], batch_rows=10)
    assert str(caught.value).startswith("RECORDS_DATABASE_URL")
    assert "does not exist" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_file_that_is_not_a_database_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    path.write_text("id,item_name\n1,a csv file\n")
    with pytest.raises(DatabaseSettingError) as caught:
        read(parse_database_url(f"sqlite:///{path}"), ["id"], batch_rows=10)
    assert str(caught.value).startswith("RECORDS_DATABASE_URL")
    assert "is not a SQLite database" in str(caught.value)


def test_database_without_tables_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    sqlite3.connect(path).close()
    with pytest.raises(DatabaseSettingError) as caught:
        read(parse_database_url(f"sqlite:///{path}"), ["id"], batch_rows=10)
    assert "has no records tables" in str(caught.value)


def test_locked_by_a_writer_is_busy(lite: tuple[DatabaseTarget, Engine], sqlite_url: str) -> None:
    target, engine = lite
    insert_records(engine, [record(add_account(engine, "ACC1"), 0)])
    engine.dispose()
    with sqlite_write_lock(sqlite_file(sqlite_url)):
        with pytest.raises(DatabaseBusyError) as caught:
            read(target, ["id"], batch_rows=10, busy_timeout_ms=200)
        message = str(caught.value)
        assert message.startswith("RECORDS_DATABASE_URL") and "locked" in message
    assert [batch.num_rows for batch in read(target, ["id"], batch_rows=10)] == [1]


def test_empty_selection_yields_no_batch(lite: tuple[DatabaseTarget, Engine]) -> None:
    """No rows, no batch (the engine then writes the header from the column kinds)."""
    target, engine = lite
    engine.dispose()
    assert read(target, COLUMNS, batch_rows=10) == []


# The engine on SQLite against PostgreSQL for the same records (`populate`).


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
    url = url_of(pg_records)
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
    url = url_of(pg_records)
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
    url = url_of(pg_records)
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
