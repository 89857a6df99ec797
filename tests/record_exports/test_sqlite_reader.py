"""The SQLite read path: ADBC batches with each column's type and NULLs whatever the first
rows hold, checked against Python's own `sqlite3` reading the stored values."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy.engine import Engine

from record_exports.columns import ALL_COLUMNS, resolve_columns
from record_exports.database import (
    DatabaseBusyError,
    DatabaseSettingError,
    DatabaseTarget,
    create_engine_for,
    parse_database_url,
)
from record_exports.errors import ExportFailedError
from record_exports.query import RecordFilters, build_query
from record_exports.schema import create_schema
from record_exports.sqlite_reader import ARROW_TYPES, iter_sqlite_batches
from tests.factories import BASE_TIME, add_account, insert_order_remarks, insert_records, record
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
            assert batch.schema.field(name).type == ARROW_TYPES[ALL_COLUMNS[name]], name
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
