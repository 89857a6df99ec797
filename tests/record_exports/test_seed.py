"""Seeding: deterministic, realistic, and covering every case exports must handle."""

from __future__ import annotations

import datetime as dt

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.database import create_engine_for, parse_database_url
from record_exports.schema import STATUSES, bookkeeping_records, create_schema
from record_exports.seed import (
    HOSTILE_TEXT,
    LAST_CHANGE,
    has_records,
    records_frame,
    seed_records,
)
from tests.factories import count_rows


def _snapshot(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                bookkeeping_records.c.id,
                bookkeeping_records.c.item_name,
                bookkeeping_records.c.sale_price_cents,
                bookkeeping_records.c.status,
                bookkeeping_records.c.sale_date,
            ).order_by(bookkeeping_records.c.id)
        ).all()
    return [tuple(str(value) for value in row) for row in rows]


def test_same_seed_same_records(postgres_url: str, sqlite_url: str) -> None:
    snapshots = []
    for url in (postgres_url, sqlite_url):
        engine = create_engine_for(parse_database_url(url))
        create_schema(engine)
        summary = seed_records(engine, 3_000, 4, seed=42)
        assert summary.records == 3_000
        assert count_rows(engine, "bookkeeping_records") == 3_000
        assert count_rows(engine, "accounts") == 4
        assert count_rows(engine, "order_remarks") == summary.order_remarks > 0
        snapshots.append(_snapshot(engine))
        engine.dispose()
    assert snapshots[0] == snapshots[1]


def test_seeding_twice_adds_new_records(engine: Engine) -> None:
    assert not has_records(engine)
    seed_records(engine, 500, 2, seed=1)
    seed_records(engine, 500, 3, seed=1)
    assert has_records(engine)
    assert count_rows(engine, "bookkeeping_records") == 1_000
    assert count_rows(engine, "accounts") == 3


def test_generated_records_cover_every_case() -> None:
    frame = records_frame(0, 50_000, 5, seed=3)
    assert frame.equals(records_frame(0, 50_000, 5, seed=3))
    assert not frame.equals(records_frame(0, 50_000, 5, seed=4))
    assert set(frame["status"].unique()) == set(STATUSES)
    share = frame["status"].value_counts(normalize=True)
    successful = share.filter(pl.col("status") == "SUCCESSFUL")["proportion"].item()
    assert 0.75 < successful < 0.9
    for column in (
        "ebay_fees_cents",
        "amazon_price_cents",
        "amazon_tax_cents",
        "amazon_shipping_cents",
        "amazon_order_id",
        "return_label_cost_cents",
        "deleted_at",
        "order_remark",
        "service_remark",
    ):
        nulls = frame[column].null_count()
        assert 0 < nulls < frame.height, column
    assert set(HOSTILE_TEXT) <= set(frame["item_name"].unique())
    assert frame["id"].n_unique() == frame.height
    assert (
        frame["id"]
        .str.contains(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$")
        .all()
    )
    assert (frame["updated_at"] >= frame["created_at"]).all()
    assert (frame["qty"] >= 1).all() and (frame["sale_price_cents"] >= 0).all()
    # Nothing after the end of the last sale day (the demo used to hold edits dated weeks
    # ahead of the clock), while edits still happen on the last days.
    for column in ("updated_at", "created_at"):
        latest = frame[column].max()
        assert isinstance(latest, dt.datetime) and latest < LAST_CHANGE, column
    last_days = frame.filter(
        pl.col("sale_date") >= pl.lit(LAST_CHANGE.date()) - pl.duration(days=3)
    )
    assert (last_days["updated_at"] > last_days["created_at"]).any()
