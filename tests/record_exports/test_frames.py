"""Raw batches from either database become the same export frame, typed by COLUMN_TYPES."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa

from record_exports.columns import COLUMN_TYPES, ColumnKind, resolve_columns
from record_exports.frames import batch_to_frame, empty_frame

COLUMNS = resolve_columns(["id", "sale_date", "qty", "created_at", "profit_cents"], False)
STAMP = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def money(name: str, values: list[int | None]) -> tuple[str, pa.Array]:
    return name, pa.array(values, pa.int64())


def source(id_: pa.Array, sale_date: pa.Array, created_at: pa.Array) -> pa.RecordBatch:
    """The stored columns an export of COLUMNS reads (profit's inputs included)."""
    columns = dict(
        [
            ("id", id_),
            ("sale_date", sale_date),
            ("qty", pa.array([2], pa.int32())),
            ("created_at", created_at),
            ("status", pa.array(["SUCCESSFUL"])),
            money("sale_price_cents", [10_000]),
            money("ebay_fees_cents", [1_300]),
            money("amazon_price_cents", [6_000]),
            money("amazon_tax_cents", [None]),
            money("amazon_shipping_cents", [299]),
            money("return_label_cost_cents", [750]),
        ]
    )
    return pa.RecordBatch.from_pydict(columns)


def test_postgresql_and_sqlite_batches_give_the_same_frame() -> None:
    postgresql = source(
        pa.array(["a"]),
        pa.array([dt.date(2026, 3, 1)], pa.date32()),
        pa.array([STAMP], pa.timestamp("us", "UTC")),
    )
    sqlite = source(
        pa.array(["a"]),
        pa.array(["2026-03-01"]),
        pa.array(["2026-03-01 12:00:00.123456+00:00"]),
    )
    naive = source(
        pa.array(["a"]),
        pa.array([dt.date(2026, 3, 1)], pa.date32()),
        pa.array([STAMP.replace(tzinfo=None)], pa.timestamp("us")),
    )
    frames = [batch_to_frame(batch, COLUMNS) for batch in (postgresql, sqlite, naive)]
    for frame in frames:
        assert frame.columns == [column.name for column in COLUMNS]
        assert frame.dtypes == [COLUMN_TYPES[column.kind].frame for column in COLUMNS]
        assert frame.row(0) == ("a", dt.date(2026, 3, 1), 2, STAMP, 10_000 - 1_300 - 6_299)
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])


def test_timestamps_in_another_zone_are_converted_to_utc() -> None:
    berlin = pa.array([STAMP], pa.timestamp("us", "Europe/Berlin"))
    batch = source(pa.array(["a"]), pa.array([dt.date(2026, 3, 1)], pa.date32()), berlin)
    assert batch_to_frame(batch, COLUMNS)["created_at"].item() == STAMP


def test_empty_frame_has_every_column_typed() -> None:
    columns = resolve_columns([], include_remarks=True)
    frame = empty_frame(columns)
    assert frame.height == 0
    assert dict(frame.schema) == {column.name: column.dtype for column in columns}
    assert frame.schema["sale_date"] == COLUMN_TYPES[ColumnKind.DATE].frame == pl.Date
