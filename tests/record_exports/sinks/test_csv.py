"""CSV files against PostgreSQL's own COPY of the same selection, byte for byte."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from record_exports.database import DatabaseTarget
from tests.factories import oracle_copy_csv, oracle_rows
from tests.record_exports.exporting import export, url_of


def test_default_csv_is_byte_identical_to_copy(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, meta = export(pg_records, tmp_path, "all")
    expected = oracle_copy_csv(url_of(pg_records))
    assert path.read_bytes() == expected
    url = url_of(pg_records)
    assert meta["row_count"] == len(oracle_rows(url)) > 1_500


def test_dollars_csv_matches_numeric_cast(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, _ = export(pg_records, tmp_path, "dollars", money="dollars")
    url = url_of(pg_records)
    assert path.read_bytes() == oracle_copy_csv(url, money="dollars")
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert "profit" in header.split(",") and "profit_cents" not in header


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
