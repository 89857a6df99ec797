"""The schema on both databases: created idempotently, constraints that refuse bad rows."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from record_exports.schema import create_schema, export_requests, metadata
from tests.factories import add_account, insert_records, record


def test_create_schema_twice(engine: Engine) -> None:
    create_schema(engine)
    create_schema(engine)
    inspector = sa.inspect(engine)
    assert set(metadata.tables) <= set(inspector.get_table_names())
    indexes = {index["name"] for index in inspector.get_indexes("bookkeeping_records")}
    assert {
        "ix_records_account_sale_date",
        "ix_records_updated_at_id",
        "ix_records_sale_date_account",
    } <= indexes


def test_a_schema_from_before_the_change_log_gets_it(engine: Engine) -> None:
    """`init-db` on a database made by an older version adds the new index, table and triggers."""
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_records_sale_date_account"))
        connection.execute(sa.text("DROP TABLE record_changes"))
    create_schema(engine)
    inspector = sa.inspect(engine)
    assert "record_changes" in inspector.get_table_names()
    indexes = {index["name"] for index in inspector.get_indexes("bookkeeping_records")}
    assert "ix_records_sale_date_account" in indexes
    account = add_account(engine, "ACC1")
    insert_records(engine, [record(account, 1)])
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM record_changes")).scalar() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"qty": 0},
        {"sale_price_cents": -1},
        {"ebay_fees_cents": -5},
        {"return_label_cost_cents": -750},
        {"status": "SHIPPED"},
        {"item_name": None},
    ],
)
def test_constraints_reject_bad_rows(engine: Engine, bad: dict[str, Any]) -> None:
    account = add_account(engine, "ACC1")
    with pytest.raises(IntegrityError):
        insert_records(engine, [record(account, 1, **bad)])


def test_record_needs_a_known_account(postgres_url: str, pg_engine: Engine) -> None:
    with pytest.raises(IntegrityError):
        insert_records(pg_engine, [record("00000000-0000-4000-8000-000000000000", 1)])


def test_export_requests_defaults(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(export_requests.insert().values(params={"format": "csv"}))
        row = connection.execute(sa.select(export_requests)).one()
    assert row.status == "pending"
    assert row.params == {"format": "csv"}
    assert row.requested_at is not None and row.updated_at is not None
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(export_requests.insert().values(params={}, status="exploded"))


def test_a_complete_schema_takes_no_lock_on_the_records(pg_engine: Engine) -> None:
    """`create_schema` runs on every `seed` and the request table on every `record-exports
    request`: on a complete schema neither may wait for a writer of the records (creating a
    trigger would: it locks the table against every reader and writer)."""
    from pipelines.request_store import insert_request

    writer = pg_engine.connect()
    transaction = writer.begin()
    writer.execute(sa.text("LOCK TABLE bookkeeping_records IN ROW EXCLUSIVE MODE"))
    waiting = sa.create_engine(
        pg_engine.url, connect_args={"options": "-c lock_timeout=2000"}, poolclass=sa.NullPool
    )
    try:
        create_schema(waiting)
        assert insert_request(waiting, {"format": "csv"}, None) >= 1
    finally:
        transaction.rollback()
        writer.close()
        waiting.dispose()
