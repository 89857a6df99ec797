"""The manifest next to every export describes the file as it is on disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from record_exports.database import DatabaseTarget
from tests.record_exports.exporting import export


def test_manifest_describes_the_file(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    path, meta = export(pg_records, tmp_path, "manifested", format="parquet", money="dollars")
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
    assert manifest["bytes"] == path.stat().st_size
    assert manifest["row_count"] == meta["row_count"] == pl.read_parquet(path).height
    assert manifest["format"] == "parquet" and manifest["money"] == "dollars"
    assert manifest["columns"][-1] == "profit"
    assert manifest["run_id"] == "test-run"
    assert manifest["created_at"].endswith("Z")
    assert set(manifest["filters"]) == {
        "account_codes",
        "statuses",
        "sale_date_from",
        "sale_date_to",
    }


@pytest.mark.parametrize(
    ("export_format", "compression"),
    [
        *(
            (text, packing)
            for text in ("csv", "ndjson", "json")
            for packing in ("none", "gzip", "zstd")
        ),
        ("parquet", "none"),
    ],
)
def test_manifest_digest_is_that_of_the_file(
    pg_records: DatabaseTarget, tmp_path: Path, export_format: str, compression: str
) -> None:
    """Text formats hash while writing, Parquet reads its file back: both give the file's."""
    path, meta = export(
        pg_records, tmp_path, "digest", format=export_format, compression=compression
    )
    data = path.read_bytes()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["bytes"] == len(data)
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert (manifest["bytes"], manifest["sha256"]) == (meta["bytes"], meta["sha256"])
