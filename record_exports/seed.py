"""Synthetic bookkeeping records that look like the real thing, generated column-wise.

Every random choice is a hash of (seed, record number, column salt), so a seed gives
the same records on every machine with the pinned Polars version (its hash is stable
within a version), and no Python loop runs per record.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from record_exports.schema import (
    accounts,
    bookkeeping_records,
    order_remarks,
    service_remarks,
)

LAST_SALE_DATE = dt.date(2026, 11, 28)
SALE_DAYS = 365
# Every seeded timestamp lies before the end of the last sale day.
LAST_CHANGE = dt.datetime.combine(LAST_SALE_DATE + dt.timedelta(days=1), dt.time(), dt.UTC)
CHUNK_ROWS = 200_000
ACCOUNT_NAMESPACE = uuid.UUID("6f1c1a52-3a8e-4d43-9a0f-6a4f5d1d2b7e")

PRODUCTS = [
    "Anker USB-C Charger 65W",
    "LEGO Classic Bricks Box",
    "Instant Pot Duo 6 Qt",
    "Nintendo Switch Pro Controller",
    "Yeti Rambler 20 oz Tumbler",
    "Crest 3D White Strips, 20 ct",
    "Hydro Flask 32 oz Wide Mouth",
    "Kindle Paperwhite (16 GB)",
    "Bose QuietComfort Earbuds II",
    "Cuisinart 12-Cup Coffee Maker",
    "Energizer AA Batteries 24-pack",
    "Café Bustelo Espresso 10 oz",
]

HOSTILE_TEXT = [
    'Quoted "Deluxe" Edition, 2-pack',
    "Line one\nline two",
    "Windows\r\nline ending",
    "=cmd|' /C calc'!A0",
    "+SUM(A1:A9)",
    "-2+3",
    "@import",
    "\tleading tab",
    "Emoji 🎉🚀 and ümlauts ß",
    "",
    "x" * 40_000,
    "trailing comma,",
    "back\\slash and 'single' quotes",
]

REMARKS = [
    "Buyer asked for gift wrap",
    "Shipped late, apologised",
    'Said "thanks!", left 5 stars',
    '=HYPERLINK("http://example.invalid")',
    "Partial refund discussed\nnot agreed",
]

STATUS_WEIGHTS = (
    ("SUCCESSFUL", 82),
    ("RETURN_LABEL_PROVIDED", 6),
    ("RETURN_CLOSED", 6),
    ("REFUND_NO_RETURN", 6),
)


@dataclass(frozen=True)
class SeedSummary:
    records: int
    accounts: int
    order_remarks: int
    service_remarks: int


def account_code(number: int) -> str:
    return f"ACC{number}"


def account_id(code: str) -> str:
    """Stable id per code, so re-seeding finds the same accounts."""
    return str(uuid.uuid5(ACCOUNT_NAMESPACE, code))


def _random(salt: int, seed: int) -> pl.Expr:
    """A uniform UInt64 per record, fixed by seed, record number and a per-column salt."""
    return pl.col("n").hash(seed=seed * 1_000_003 + salt)


def _below(salt: int, seed: int, bound: int) -> pl.Expr:
    return (_random(salt, seed) % bound).cast(pl.Int64)


def _digits(salt: int, seed: int) -> pl.Expr:
    return _random(salt, seed).cast(pl.String).str.zfill(20)


def _uuid_text(seed: int, salt: int) -> pl.Expr:
    """A version-4-shaped UUID made of decimal digits (valid hex) from two hashes."""
    a = _digits(salt, seed)
    b = _digits(salt + 1, seed)
    return pl.concat_str(
        a.str.slice(0, 8),
        pl.lit("-"),
        a.str.slice(8, 4),
        pl.lit("-4"),
        a.str.slice(12, 3),
        pl.lit("-8"),
        a.str.slice(15, 3),
        pl.lit("-"),
        b.str.slice(0, 12),
    )


def _nullable(value: pl.Expr, salt: int, seed: int, null_percent: int) -> pl.Expr:
    return pl.when(_below(salt, seed, 100) < null_percent).then(None).otherwise(value)


def _pick(options: list[str], index: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(options, dtype=pl.String)).gather(index)


def _status(seed: int) -> pl.Expr:
    """Weighted choice: a roll in 0..99 against the cumulative weights."""
    roll = _below(40, seed, 100)
    (first, first_weight), *rest = STATUS_WEIGHTS
    threshold = first_weight
    chain: Any = pl.when(roll < threshold).then(pl.lit(first))
    for name, weight in rest:
        threshold += weight
        chain = chain.when(roll < threshold).then(pl.lit(name))
    return chain.otherwise(pl.lit(STATUS_WEIGHTS[0][0]))


def records_frame(start: int, count: int, account_count: int, seed: int) -> pl.DataFrame:
    """Records number `start` .. `start + count - 1` for `seed`, as columns of the table."""
    base = pl.DataFrame({"n": pl.int_range(start, start + count, dtype=pl.UInt64, eager=True)})
    sale_price = 300 + _below(3, seed, 25_000)
    is_hostile = _below(10, seed, 1000) < 8
    item = (
        pl.when(is_hostile)
        .then(_pick(HOSTILE_TEXT, _below(11, seed, len(HOSTILE_TEXT))))
        .otherwise(
            pl.concat_str(
                _pick(PRODUCTS, _below(12, seed, len(PRODUCTS))),
                pl.lit(" #"),
                _below(13, seed, 500).cast(pl.String),
            )
        )
    )
    sale_date = pl.lit(LAST_SALE_DATE) - pl.duration(days=_below(5, seed, SALE_DAYS))
    created_at = sale_date.cast(pl.Datetime("us", "UTC")) + pl.duration(
        seconds=_below(20, seed, 86_400), microseconds=_below(21, seed, 1_000_000)
    )
    # An edit up to 20 days after the sale, but never after the last sale day: seeded data
    # must not carry timestamps later than the time it claims to describe (a change
    # stamped in the future confuses anyone comparing times, people included).
    seconds_left = (LAST_CHANGE - created_at).dt.total_seconds().cast(pl.Int64).clip(lower_bound=1)
    edit_delay = _below(23, seed, 20 * 86_400) % pl.min_horizontal(seconds_left, 20 * 86_400)
    updated_at = (
        pl.when(_below(22, seed, 100) < 60)
        .then(created_at)
        .otherwise(created_at + pl.duration(seconds=edit_delay))
    )
    frame = base.with_columns(
        id=_uuid_text(seed, 1),
        account_number=_below(2, seed, account_count) + 1,
        ebay_order_id=pl.concat_str(
            _digits(4, seed).str.slice(0, 2),
            pl.lit("-"),
            _digits(4, seed).str.slice(2, 5),
            pl.lit("-"),
            _digits(4, seed).str.slice(7, 5),
        ),
        sale_date=sale_date,
        item_name=item,
        qty=pl.when(_below(14, seed, 100) < 85).then(1).otherwise(2 + _below(15, seed, 4)),
        sale_price_cents=sale_price,
        ebay_fees_cents=_nullable(sale_price * 13 // 100, 30, seed, 3),
        amazon_price_cents=_nullable(sale_price * (55 + _below(31, seed, 30)) // 100, 32, seed, 3),
        amazon_tax_cents=_nullable(_below(33, seed, 1_500), 34, seed, 10),
        amazon_shipping_cents=_nullable(
            pl.when(_below(35, seed, 100) < 70).then(0).otherwise(499 + _below(36, seed, 800)),
            37,
            seed,
            10,
        ),
        amazon_order_id=_nullable(
            pl.concat_str(
                pl.lit("11"),
                _digits(38, seed).str.slice(0, 1),
                pl.lit("-"),
                _digits(38, seed).str.slice(1, 7),
                pl.lit("-"),
                _digits(38, seed).str.slice(8, 7),
            ),
            39,
            seed,
            5,
        ),
        status=_status(seed),
        created_at=created_at,
        updated_at=updated_at,
        deleted_at=pl.when(_below(24, seed, 100) < 2).then(updated_at).otherwise(None),
        order_remark=pl.when(_below(50, seed, 100) < 10).then(
            _pick(REMARKS, _below(51, seed, len(REMARKS)))
        ),
        service_remark=pl.when(_below(52, seed, 100) < 5).then(
            _pick(REMARKS, _below(53, seed, len(REMARKS)))
        ),
    )
    is_return = pl.col("status") != "SUCCESSFUL"
    label_cost = 450 + _below(41, seed, 1_200)
    return frame.with_columns(
        return_label_cost_cents=pl.when(is_return)
        .then(_nullable(label_cost, 42, seed, 15))
        .otherwise(pl.when(_below(43, seed, 100) < 3).then(label_cost)),
        account_id=_pick(
            [account_id(account_code(i + 1)) for i in range(account_count)],
            pl.col("account_number") - 1,
        ),
    ).drop("n", "account_number")


RECORD_COLUMNS = [column.name for column in bookkeeping_records.columns]


def _ensure_accounts(connection: Connection, account_count: int) -> None:
    existing = set(connection.execute(sa.select(accounts.c.account_code)).scalars())
    missing = [
        {"id": account_id(code), "account_code": code, "name": f"Store {code[3:]}"}
        for code in (account_code(i + 1) for i in range(account_count))
        if code not in existing
    ]
    if missing:
        connection.execute(accounts.insert(), missing)


def _chunks(start: int, total: int, account_count: int, seed: int) -> Iterator[pl.DataFrame]:
    done = 0
    while done < total:
        count = min(CHUNK_ROWS, total - done)
        yield records_frame(start + done, count, account_count, seed)
        done += count


def _copy_csv(connection: Connection, table: str, columns: list[str], frame: pl.DataFrame) -> None:
    """PostgreSQL COPY FROM STDIN; Polars' CSV matches COPY's (empty field = NULL, "" = '')."""
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    column_list = ", ".join(columns)
    payload = frame.select(columns).write_csv(
        include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.6f+00"
    )
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv)") as copy,
    ):
        copy.write(payload.encode("utf-8"))


def _insert_rows(connection: Connection, table: sa.Table, frame: pl.DataFrame) -> None:
    if frame.height:
        connection.execute(table.insert(), frame.to_dicts())


def _remarks(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.filter(pl.col(column).is_not_null()).select(
        record_id=pl.col("id"), content=pl.col(column)
    )


def seed_records(engine: Engine, records: int, account_count: int, seed: int) -> SeedSummary:
    """Add `records` records over `account_count` accounts; numbering continues after existing ones
    so that seeding twice adds new records instead of colliding."""
    if records < 0 or account_count < 1:
        raise ValueError("records must be >= 0 and accounts >= 1")
    is_postgresql = engine.dialect.name == "postgresql"
    order_count = service_count = 0
    with engine.begin() as connection:
        _ensure_accounts(connection, account_count)
        start = connection.execute(
            sa.select(sa.func.count()).select_from(bookkeeping_records)
        ).scalar_one()
        for chunk in _chunks(start, records, account_count, seed):
            orders = _remarks(chunk, "order_remark")
            services = _remarks(chunk, "service_remark")
            order_count += orders.height
            service_count += services.height
            rows = chunk.select(RECORD_COLUMNS)
            if is_postgresql:
                _copy_csv(connection, "bookkeeping_records", RECORD_COLUMNS, rows)
                _copy_csv(connection, "order_remarks", ["record_id", "content"], orders)
                _copy_csv(connection, "service_remarks", ["record_id", "content"], services)
            else:
                _insert_rows(connection, bookkeeping_records, rows)
                _insert_rows(connection, order_remarks, orders)
                _insert_rows(connection, service_remarks, services)
    return SeedSummary(records, account_count, order_count, service_count)


def has_records(engine: Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(sa.select(bookkeeping_records.c.id).limit(1)).first() is not None
