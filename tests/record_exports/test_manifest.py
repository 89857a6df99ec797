"""The manifest next to every export describes the file as it is on disk."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from record_exports.atomic import partial_file
from record_exports.database import DatabaseTarget
from record_exports.manifest import Manifest, publish_with_manifest
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


@pytest.mark.parametrize("money", ["cents", "dollars"])
def test_excel_manifest_says_dollars_and_lists_the_headers(
    pg_records: DatabaseTarget, tmp_path: Path, money: str
) -> None:
    """Excel money cells hold dollars whatever `money` asks, so its manifest says dollars and
    lists the columns as the sheet's header row shows them."""
    path, meta = export(pg_records, tmp_path, "sheet", format="xlsx", money=money)
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    sheet = openpyxl.load_workbook(path, read_only=True)["Records"]
    header = next(sheet.iter_rows(values_only=True))
    assert manifest["money"] == meta["money"] == "dollars"
    assert manifest["columns"] == meta["columns"] == list(header)
    assert manifest["columns"][:2] == ["ID", "eBay Order ID"]
    assert "COGS Total" in manifest["columns"]


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


def test_manifest_file_layout(tmp_path: Path) -> None:
    manifest = Manifest(
        format="csv",
        columns=["id", "profit"],
        filters={"account_codes": ["ACC1"], "statuses": []},
        money="dollars",
        row_count=2,
        bytes=10,
        sha256="ab" * 32,
        created_at=dt.datetime(2026, 3, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        run_id="run-1",
    )
    with partial_file(tmp_path / "x.csv") as temp:
        temp.write_bytes(b"id,profit\n1,2\n3,4\n")
        path = publish_with_manifest(temp, tmp_path / "x.csv", manifest)
    assert path == tmp_path / "x.csv.manifest.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.csv.manifest.json"]
    content = json.loads(path.read_text())
    assert list(content) == [*manifest.describe(), "created_at", "run_id"]
    assert content["created_at"] == "2026-03-01T12:00:00Z"
    assert content == manifest.to_json()
    assert path.read_bytes().endswith(b"}\n")
