"""Hand-made records for tests, and the PostgreSQL oracle (bench/reference_sql.py) run the ways
the tests compare with: COPY, row_to_json and a plain SELECT."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.reference_sql import reference_select
from record_exports.schema import STATUSES, accounts, bookkeeping_records, order_remarks
from record_exports.seed import account_id

NULLABLE_MONEY = (
    "ebay_fees_cents",
    "amazon_price_cents",
    "amazon_tax_cents",
    "amazon_shipping_cents",
    "return_label_cost_cents",
)
BASE_TIME = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

HOSTILE = [
    'Quote "inside", comma',
    "new\nline",
    "carriage\r\nreturn",
    "=cmd|' /C calc'!A0",
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\tTab",
    "emoji 🎉 ünïcödé",
    "",
    "y" * 40_000,
    "back\\slash",
    '"',
    "<r>&</r>",
]


def add_account(engine: Engine, code: str) -> str:
    identifier = account_id(code)
    with engine.begin() as connection:
        connection.execute(
            accounts.insert().values(id=identifier, account_code=code, name=f"Store {code}")
        )
    return identifier


def record(account: str, number: int, **values: Any) -> dict[str, Any]:
    """A valid record with every field set; `values` override."""
    row: dict[str, Any] = {
        "id": str(uuid.UUID(int=number + 1)),
        "account_id": account,
        "ebay_order_id": f"12-{number:05d}-00001",
        "sale_date": dt.date(2026, 3, 1) + dt.timedelta(days=number % 3),
        "item_name": f"Item {number}",
        "qty": 1 + number % 3,
        "sale_price_cents": 10_000 + number,
        "ebay_fees_cents": 1_300,
        "amazon_price_cents": 6_000,
        "amazon_tax_cents": 480,
        "amazon_shipping_cents": 299,
        "amazon_order_id": f"112-{number:07d}-0000001",
        "status": "SUCCESSFUL",
        "return_label_cost_cents": 750,
        "created_at": BASE_TIME,
        "updated_at": BASE_TIME + dt.timedelta(seconds=number),
        "deleted_at": None,
    }
    row.update(values)
    return row


def status_null_matrix(account: str) -> list[dict[str, Any]]:
    """Every status × every combination of null money fields, with sub-dollar and zero sums."""
    rows = []
    number = 0
    for status in STATUSES:
        for mask in itertools.product((False, True), repeat=len(NULLABLE_MONEY)):
            nulls = {
                name: None for name, is_null in zip(NULLABLE_MONEY, mask, strict=True) if is_null
            }
            rows.append(
                record(
                    account,
                    number,
                    status=status,
                    sale_price_cents=number % 7,  # small prices make negative, sub-dollar profits
                    **nulls,
                )
            )
            number += 1
    return rows


def insert_records(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(bookkeeping_records.insert(), rows)


def insert_order_remarks(engine: Engine, remarks: dict[str, str]) -> None:
    with engine.begin() as connection:
        connection.execute(
            order_remarks.insert(),
            [{"record_id": key, "content": value} for key, value in remarks.items()],
        )


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


def oracle_copy_csv(url: str, money: str = "cents", where: str = "TRUE") -> bytes:
    """What `COPY (...) TO STDOUT WITH (FORMAT csv, HEADER)` prints for the export."""
    return copy_csv(url, reference_select(money, where))


def copy_csv(url: str, select: str) -> bytes:
    """What `COPY (<select>) TO STDOUT WITH (FORMAT csv, HEADER)` prints (constant SQL)."""
    statement = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"
    with (
        psycopg.connect(libpq_url(url)) as connection,
        connection.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        return b"".join(bytes(chunk) for chunk in copy)


def oracle_ndjson(url: str, money: str = "cents") -> bytes:
    """`row_to_json` per row, one per line."""
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(t)::text FROM ({reference_select(money)}) t")
        return b"".join(row[0].encode("utf-8") + b"\n" for row in cursor.fetchall())


def oracle_rows(url: str, money: str = "cents") -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute(reference_select(money))
        return cursor.fetchall()


def count_rows(engine: Engine, table: str) -> int:
    """Rows of a table (a name the test writes, never user input)."""
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def oracle_account_day_csv(url: str, account_code: str, day: dt.date) -> bytes:
    """What COPY prints for one account's records of one sale day: its daily CSV file.
    (The values are a uuid and a date this module makes, not outside input.)"""
    where = (
        f"r.account_id = '{account_id(account_code)}' AND r.sale_date = DATE '{day.isoformat()}'"
    )
    return oracle_copy_csv(url, where=where)
