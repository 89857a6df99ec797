"""The SQLite read path keeps each column's type whatever the first rows hold."""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy.engine import Engine

from record_exports.columns import resolve_columns
from record_exports.database import create_engine_for, parse_database_url
from record_exports.query import RecordFilters, build_query
from record_exports.schema import create_schema
from record_exports.sqlite_reader import iter_sqlite_batches
from tests.factories import add_account, insert_records, record


def test_all_null_first_batch_keeps_text_type(sqlite_url: str) -> None:
    target = parse_database_url(sqlite_url)
    engine: Engine = create_engine_for(target)
    create_schema(engine)
    account = add_account(engine, "ACC1")
    # Row order is updated_at descending: the newest rows (read first) have no order id.
    rows = [record(account, n, amazon_order_id=None if n >= 5 else f"112-{n}") for n in range(9)]
    insert_records(engine, rows)
    engine.dispose()
    query = build_query(
        resolve_columns(["id", "amazon_order_id", "sale_date", "created_at"], False),
        False,
        RecordFilters(),
        is_postgresql=False,
    )
    batches = list(iter_sqlite_batches(target, query, batch_rows=3))
    assert [batch.num_rows for batch in batches] == [3, 3, 3]
    assert all(batch.schema.field("amazon_order_id").type == pa.string() for batch in batches)
    values = [v for batch in batches for v in batch.column("amazon_order_id").to_pylist()]
    assert values == [None, None, None, None, "112-4", "112-3", "112-2", "112-1", "112-0"]
