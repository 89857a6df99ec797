"""Parquet files read back with Polars, against a plain SELECT of the same selection."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from record_exports.database import DatabaseTarget
from tests.factories import oracle_rows
from tests.record_exports.exporting import export, url_of


def test_parquet_types_and_values_match_oracle(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = url_of(pg_records)
    cents_path, _ = export(pg_records, tmp_path, "cents", format="parquet")
    frame = pl.read_parquet(cents_path)
    assert frame.schema["profit_cents"] == pl.Int64
    assert frame.schema["sale_date"] == pl.Date
    assert frame.rows() == oracle_rows(url)

    dollars_path, _ = export(pg_records, tmp_path, "dollars", format="parquet", money="dollars")
    dollars = pl.read_parquet(dollars_path)
    assert dollars.schema["profit"] == pl.Decimal(18, 2)
    assert dollars.rows() == oracle_rows(url, money="dollars")
