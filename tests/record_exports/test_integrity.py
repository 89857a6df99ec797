"""The integrity check against real exports of hostile records in PostgreSQL: every format and
money mode passes; a file or manifest changed afterwards fails, showing both numbers; a file
whose records changed since (the change log says so) is reported as changed, not failed."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.daily import DailySelection, export_days
from record_exports.database import DatabaseTarget
from record_exports.engine import resolve_account_ids, run_export
from record_exports.integrity import (
    PARALLEL_FROM_FILES,
    DailyFileToCheck,
    FileCheck,
    check_daily_files,
    check_export,
    check_processes,
    latest_change,
)
from record_exports.params import ExportFormat, ExportParams, parse_export_params
from record_exports.schema import bookkeeping_records


def export_and_check(
    target: DatabaseTarget, engine: Engine, tmp_path: Path, **raw: Any
) -> tuple[ExportParams, Path, int]:
    params = parse_export_params(raw)
    since = latest_change(engine)
    path = tmp_path / params.file_name("export")
    run_export(target, params, path, run_id="integrity-test", engine=engine)
    return params, path, since


def check(engine: Engine, params: ExportParams, path: Path, since: int) -> FileCheck:
    ids = resolve_account_ids(engine, params.account_codes)
    return check_export(engine, params, ids, path, since)


def test_helper_processes_only_for_many_files() -> None:
    assert check_processes(PARALLEL_FROM_FILES - 1) == 1
    assert check_processes(PARALLEL_FROM_FILES) == min(os.cpu_count() or 1, 4)


@pytest.mark.parametrize(
    "raw",
    [
        {"format": "csv"},
        {"format": "csv", "money": "dollars", "bom": True, "compression": "gzip"},
        {"format": "ndjson", "money": "dollars", "compression": "zstd"},
        {"format": "json", "statuses": ["RETURN_CLOSED", "SUCCESSFUL"]},
        {"format": "parquet", "money": "dollars", "account_codes": ["ACC2"]},
        {"format": "xlsx", "sale_date_from": "2026-03-02"},
        {"format": "csv", "columns": ["id", "profit_cents", "item_name"]},
        {"format": "csv", "columns": ["id"]},
    ],
    ids=lambda raw: "-".join(f"{k}={v}" for k, v in raw.items()),
)
def test_real_exports_pass(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path, raw: dict[str, Any]
) -> None:
    params, path, since = export_and_check(pg_records, pg_engine, tmp_path, **raw)
    found = check(pg_engine, params, path, since)
    assert found.differences == [] and found.passed
    assert found.database.rows > 0
    assert set(found.database.money) == {c.name for c in params.columns if c.is_money}


def texts(found: FileCheck) -> list[str]:
    return [difference.text() for difference in found.differences]


def test_an_edited_money_cell_fails_showing_both_sums(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path
) -> None:
    params, path, since = export_and_check(pg_records, pg_engine, tmp_path, format="csv")
    lines = path.read_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    fields = lines[1].decode().split(",")
    position = header.index("sale_price_cents")
    fields[position] = str(int(fields[position]) + 100)
    path.write_bytes(b"\n".join([lines[0], ",".join(fields).encode(), *lines[2:]]))

    found = check(pg_engine, params, path, since)

    assert not found.passed and not found.changed
    total = found.database.money["sale_price_cents"]
    assert f"{path.name}: sale_price_cents: database {total}, file {total + 100}" in texts(found)
    assert any(
        text.startswith(f"{path.name}: sha256: database -, manifest ") for text in texts(found)
    )


def test_a_dropped_row_and_a_wrong_manifest_fail_showing_the_numbers(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path
) -> None:
    params, path, since = export_and_check(
        pg_records, pg_engine, tmp_path, format="ndjson", money="dollars"
    )
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    manifest = path.with_name(path.name + ".manifest.json")
    described = json.loads(manifest.read_text())
    rows = described["row_count"]
    manifest.write_text(json.dumps({**described, "row_count": rows + 5}))

    found = check(pg_engine, params, path, since)

    assert not found.passed
    assert f"{path.name}: rows: database {rows}, manifest {rows + 5}, file {rows - 1}" in texts(
        found
    )
    assert any(text.startswith(f"{path.name}: profit_cents: database ") for text in texts(found))


def test_a_missing_manifest_is_a_difference(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path
) -> None:
    params, path, since = export_and_check(pg_records, pg_engine, tmp_path, format="parquet")
    path.with_name(path.name + ".manifest.json").unlink()
    found = check(pg_engine, params, path, since)
    assert texts(found) == [
        f"{path.name}: manifest: database present, manifest missing or unreadable"
    ]


def test_records_changed_since_the_export_are_reported_as_changed(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path
) -> None:
    params, path, since = export_and_check(pg_records, pg_engine, tmp_path, format="xlsx")
    with pg_engine.begin() as connection:
        connection.execute(
            sa.update(bookkeeping_records)
            .where(bookkeeping_records.c.deleted_at.is_(None))
            .values(sale_price_cents=bookkeeping_records.c.sale_price_cents + 1)
        )
    found = check(pg_engine, params, path, since)
    assert found.differences and found.changed and found.passed


@pytest.mark.parametrize("processes", [1, 2], ids=["in-process", "two-processes"])
def test_daily_files_pass_then_a_tampered_one_fails(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path, processes: int
) -> None:
    """The same verdicts whether the run's process reads the files back or helper processes
    do (a run of 2,000 files or more)."""
    first, last = dt.date(2026, 3, 1), dt.date(2026, 3, 3)
    formats = (ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.PARQUET)
    root = tmp_path / "daily"
    outcomes = list(export_days(pg_records, DailySelection(first, last, formats), root))
    with pg_engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM record_changes"))
    files = [
        DailyFileToCheck(f.account_code, f.day, ExportFormat(f.format), f.path)
        for outcome in outcomes
        for f in outcome.files
    ]
    assert len(files) >= 6
    checks = check_daily_files(pg_engine, files, first, last, processes)
    assert [c.path for c in checks] == [f.path for f in files]
    assert [c.differences for c in checks] == [[] for _ in checks]

    victim = next(f.path for f in files if f.format is ExportFormat.CSV)
    pl.read_csv(victim, infer_schema=False).head(-1).write_csv(victim)
    checks = check_daily_files(pg_engine, files, first, last, processes)
    failed = [c for c in checks if not c.passed]
    assert [c.path for c in failed] == [victim]
    rows = failed[0].database.rows
    assert f"{victim.name}: rows: database {rows}, file {rows - 1}" in texts(failed[0])


@pytest.mark.parametrize(
    "raw",
    [
        {"format": "ndjson", "compression": "gzip"},
        {"format": "ndjson", "money": "dollars"},
        {"format": "json", "compression": "zstd"},
        {"format": "json", "money": "dollars"},
        {"format": "csv", "money": "dollars"},
        {"format": "parquet"},
        {"format": "xlsx"},
    ],
    ids=lambda raw: "-".join(f"{k}={v}" for k, v in raw.items()),
)
def test_empty_selections_pass(
    pg_records: DatabaseTarget, pg_engine: Engine, tmp_path: Path, raw: dict[str, Any]
) -> None:
    """Found while measuring: Polars cannot read an empty NDJSON file nor an empty
    `{"records":[]}`, which made every empty NDJSON or JSON request fail its check."""
    params, path, since = export_and_check(
        pg_records, pg_engine, tmp_path, sale_date_from="2030-01-01", **raw
    )
    found = check(pg_engine, params, path, since)
    assert found.differences == [] and found.database.rows == 0
