"""`daily_account_exports` materialized in process: real instance, real PostgreSQL, real files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import openpyxl
import polars as pl
import pytest
import sqlalchemy as sa
from python_calamine import CalamineWorkbook

from pipelines.definitions import build_definitions
from record_exports.database import parse_database_url
from record_exports.engine import run_export
from record_exports.params import parse_export_params
from record_exports.schema import bookkeeping_records, record_changes
from record_exports.seed import account_id
from resources.export_storage import ExportStorage
from resources.records_database import RecordsDatabase
from tests.dagster_support import (
    DAILY_ASSET,
    FIRST_DAY,
    Setup,
    busiest_partitions,
    live_account_days,
    live_count,
)
from tests.factories import (
    HOSTILE,
    count_rows,
    insert_records,
    oracle_account_day_csv,
    record,
    status_null_matrix,
)

ASSET = "daily_account_exports"


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetMaterialization]:
    """The run's materializations by partition (sale day)."""
    found = {}
    for event in result.all_events:
        if event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            assert isinstance(materialization, dg.AssetMaterialization)
            assert materialization.partition is not None
            found[materialization.partition] = materialization
    return found


def history_2024(setup: Setup) -> set[tuple[str, dt.date]]:
    """Hand-made records of three accounts over three months of 2024 (a leap day, month and
    chunk boundaries, hostile text, every status × null combination, a soft delete)."""
    rows = []
    number = 10_000
    day = dt.date(2024, 2, 26)
    while day <= dt.date(2024, 5, 3):
        for index, code in enumerate(("ACC1", "ACC2", "ACC3")):
            if (day.toordinal() + index) % 3 == 0:
                continue  # some account-days without sales
            for _ in range(1 + (day.day + index) % 4):
                rows.append(
                    record(
                        account_id(code),
                        number,
                        sale_date=day,
                        item_name=HOSTILE[number % len(HOSTILE)],
                        updated_at=dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
                        + dt.timedelta(minutes=number % 97),
                    )
                )
                number += 1
        day += dt.timedelta(days=1)
    matrix = status_null_matrix(account_id("ACC2"))
    for offset, row in enumerate(matrix):
        row.update(
            id=f"00000000-0000-4000-8000-{900_000 + offset:012d}", sale_date=dt.date(2024, 3, 5)
        )
    deleted = record(account_id("ACC3"), 99_999, sale_date=dt.date(2024, 2, 29))
    deleted["deleted_at"] = deleted["updated_at"]
    insert_records(setup.engine, [*rows, *matrix, deleted])
    return {
        (code, day)
        for code, day in live_account_days(setup.engine)
        if dt.date(2024, 1, 1) <= day <= dt.date(2024, 12, 31)
    }


def test_a_multi_month_backfill_equals_copy_for_every_account_day(dagster_setup: Setup) -> None:
    expected = history_2024(dagster_setup)
    first, last = dt.date(2024, 2, 20), dt.date(2024, 5, 10)

    result = dagster_setup.materialize(first, last)

    assert result.success
    # One run for the whole range; one materialization per day, none for other days.
    days = {(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)}
    assert set(materializations(result)) == days
    assert dagster_setup.instance.get_materialized_partitions(DAILY_ASSET) == days
    written = {
        (path.name.split("_")[0], dt.date.fromisoformat(path.name.split("_")[1][:10]))
        for path in dagster_setup.daily_files()
        if path.suffix == ".csv"
    }
    assert written == expected and len(expected) > 100
    for code, day in sorted(expected):
        csv = dagster_setup.daily_file(code, day, "csv")
        assert csv.read_bytes() == oracle_account_day_csv(dagster_setup.url, code, day), csv
        xlsx = dagster_setup.daily_file(code, day, "xlsx")
        assert xlsx.exists() and Path(f"{xlsx}.manifest.json").exists()
    assert dagster_setup.daily_file("ACC2", dt.date(2024, 2, 29), "csv").exists()  # leap day
    # The backfill covered (and deleted) every change of its days.
    assert count_rows(dagster_setup.engine, "record_changes") == count_changes_outside(
        dagster_setup, first, last
    )


def count_changes_outside(setup: Setup, first: dt.date, last: dt.date) -> int:
    c = record_changes.c
    with setup.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).where(sa.or_(c.sale_date < first, c.sale_date > last))
            ).scalar_one()
        )


def test_daily_workbooks_read_back_like_a_single_export(
    dagster_setup: Setup, tmp_path: Path
) -> None:
    """The workbooks built for many files at once hold what a single Excel export of the same
    account and day holds, read by openpyxl and by calamine."""
    history_2024(dagster_setup)
    day = dt.date(2024, 3, 5)  # every status × null combination, hostile text
    assert dagster_setup.materialize(day).success
    single = tmp_path / "single.xlsx"
    params = parse_export_params(
        {
            "format": "xlsx",
            "account_codes": ["ACC2"],
            "sale_date_from": str(day),
            "sale_date_to": str(day),
        }
    )
    run_export(parse_database_url(dagster_setup.url), params, single)
    daily = dagster_setup.daily_file("ACC2", day, "xlsx")

    def openpyxl_values(path: Path) -> list[tuple[object, ...]]:
        book = openpyxl.load_workbook(path, read_only=True)
        return list(book["Records"].iter_rows(values_only=True))

    def calamine_values(path: Path) -> list[list[object]]:
        rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Records").to_python()
        return [list(row) for row in rows]

    assert openpyxl_values(daily) == openpyxl_values(single)
    assert calamine_values(daily) == calamine_values(single)
    assert len(openpyxl_values(daily)) == live_count(dagster_setup.engine, "ACC2", day) + 1 > 60


def test_a_day_writes_every_accounts_files_and_says_where(dagster_setup: Setup) -> None:
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    accounts = sorted(c for c, d in live_account_days(dagster_setup.engine) if d == day)

    result = dagster_setup.materialize(day)

    assert result.success
    for account in accounts:
        csv = dagster_setup.daily_file(account, day, "csv")
        assert csv.read_bytes() == oracle_account_day_csv(dagster_setup.url, account, day)
        manifest = json.loads(Path(f"{csv}.manifest.json").read_text())
        assert manifest["row_count"] == live_count(dagster_setup.engine, account, day)
        assert manifest["filters"] == {
            "account_codes": [account],
            "statuses": [],
            "sale_date_from": day.isoformat(),
            "sale_date_to": day.isoformat(),
        }
        sheet = openpyxl.load_workbook(dagster_setup.daily_file(account, day, "xlsx"))["Records"]
        assert sheet.max_row == manifest["row_count"] + 1
    materialization = materializations(result)[day.isoformat()]
    metadata = materialization.metadata
    rows = sum(live_count(dagster_setup.engine, account, day) for account in accounts)
    assert metadata["dagster/row_count"] == dg.MetadataValue.int(rows)
    assert metadata["files"] == dg.MetadataValue.int(2 * len(accounts))
    assert metadata["path"] == dg.MetadataValue.path(str(dagster_setup.exports / "daily"))
    table = metadata["files_by_account"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [record.data["account"] for record in table.records] == accounts
    first = table.records[0].data
    assert first["rows"] == live_count(dagster_setup.engine, accounts[0], day)
    assert first["csv"] == str(dagster_setup.daily_file(accounts[0], day, "csv"))
    assert isinstance(first["bytes"], int) and first["bytes"] > 0
    assert str(dagster_setup.exports / "daily") in (materialization.description or "")
    assert f"{day:%Y}/{day:%m}" in (materialization.description or "")
    assert code in accounts


def test_configured_formats_only(dagster_setup: Setup) -> None:
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    assert dagster_setup.materialize(day, formats=["parquet", "ndjson"]).success
    frame = pl.read_parquet(dagster_setup.daily_file(code, day, "parquet"))
    assert frame.height == live_count(dagster_setup.engine, code, day)
    lines = dagster_setup.daily_file(code, day, "ndjson").read_text().splitlines()
    assert len(lines) == frame.height
    assert not [path for path in dagster_setup.daily_files() if path.suffix in (".csv", ".xlsx")]


def test_no_records_no_file_and_gone_records_remove_their_files(dagster_setup: Setup) -> None:
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    assert dagster_setup.materialize(day).success
    csv = dagster_setup.daily_file(code, day, "csv")
    assert csv.exists()
    others = {path: path.stat().st_mtime_ns for path in dagster_setup.daily_files()}
    others = {path: mtime for path, mtime in others.items() if f"{code}_" not in path.name}

    r = bookkeeping_records.c
    with dagster_setup.engine.begin() as connection:
        connection.execute(
            sa.update(bookkeeping_records)
            .where(r.account_id == account_id(code), r.sale_date == day)
            .values(deleted_at=sa.func.now())
        )
    result = dagster_setup.materialize(day, account_codes=[code])

    assert result.success
    assert not csv.exists() and not Path(f"{csv}.manifest.json").exists()
    assert not dagster_setup.daily_file(code, day, "xlsx").exists()
    assert materializations(result)[day.isoformat()].metadata["removed_files"] == (
        dg.MetadataValue.int(4)
    )
    # Other accounts' files were not in the run's scope: untouched.
    assert {path: path.stat().st_mtime_ns for path in others} == others


def test_one_accounts_failure_costs_that_account_only(dagster_setup: Setup) -> None:
    """A file in the way of one account's folder fails that account-day; the run writes every
    other file, fails naming the account and day, and a re-run after the fix writes it."""
    history_2024(dagster_setup)
    first, last = dt.date(2024, 3, 1), dt.date(2024, 3, 10)
    blocked_day = dt.date(2024, 3, 5)
    blocker = dagster_setup.exports / "daily" / "ACC2" / "2024" / "03"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")

    result = dagster_setup.materialize(first, last, raise_on_error=False)

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "ACC2 2024-03-05" in message
    # ACC2's days of March failed; every other account-day is complete and equal to COPY.
    expected = {(c, d) for c, d in live_account_days(dagster_setup.engine) if first <= d <= last}
    for code, day in expected:
        csv = dagster_setup.daily_file(code, day, "csv")
        if code == "ACC2":
            assert not csv.exists()
            continue
        assert csv.read_bytes() == oracle_account_day_csv(dagster_setup.url, code, day)
        assert openpyxl.load_workbook(dagster_setup.daily_file(code, day, "xlsx"))["Records"]
    failed_days = {d for c, d in expected if c == "ACC2"}
    assert blocked_day in failed_days
    done = set(materializations(result))
    assert done == {(first + dt.timedelta(days=n)).isoformat() for n in range(10)} - {
        d.isoformat() for d in failed_days
    }
    assert not list((dagster_setup.exports / "daily").rglob(".*partial*"))
    # The failed account-days keep their change rows, so a later run covers them again.
    c = record_changes.c
    with dagster_setup.engine.connect() as connection:
        pending = set(
            connection.execute(
                sa.select(c.sale_date).where(
                    c.account_id == account_id("ACC2"), c.sale_date.between(first, last)
                )
            ).scalars()
        )
    assert {
        d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in pending
    } == failed_days

    blocker.unlink()
    assert dagster_setup.materialize(first, last).success
    for code, day in expected:
        assert dagster_setup.daily_file(code, day, "csv").read_bytes() == oracle_account_day_csv(
            dagster_setup.url, code, day
        )


def test_an_account_day_longer_than_a_sheet_rolls_over(
    dagster_setup: Setup, dagster_instance: dg.DagsterInstance
) -> None:
    history_2024(dagster_setup)
    defs = build_definitions(
        {
            "records_database": RecordsDatabase(url=dagster_setup.url),
            "export_storage": ExportStorage(
                root=str(dagster_setup.exports), xlsx_rows_per_sheet=25
            ),
        },
        timezone="UTC",
        first_day=FIRST_DAY,
    )
    day = dt.date(2024, 3, 5)
    result = defs.resolve_job_def("daily_account_exports_job").execute_in_process(
        instance=dagster_instance, partition_key=day.isoformat()
    )
    assert result.success
    rows = live_count(dagster_setup.engine, "ACC2", day)
    book = openpyxl.load_workbook(dagster_setup.daily_file("ACC2", day, "xlsx"), read_only=True)
    sheets = book.sheetnames
    assert sheets[:2] == ["Records", "Records (2)"] and len(sheets) == -(-rows // 25)
    assert sum(book[name].max_row - 1 for name in sheets) == rows
    assert dagster_setup.daily_file("ACC2", day, "csv").read_bytes() == oracle_account_day_csv(
        dagster_setup.url, "ACC2", day
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"formats": ["docx"]}, "format"),
        ({"formats": []}, "formats"),
        ({"account_codes": ["ACC77"]}, "ACC77"),
    ],
)
def test_bad_config_fails_naming_the_field_and_touches_nothing(
    dagster_setup: Setup, config: dict[str, list[str]], field: str
) -> None:
    result = dagster_setup.daily_job().execute_in_process(
        instance=dagster_setup.instance,
        partition_key="2026-01-05",
        run_config={"ops": {ASSET: {"config": config}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert field in failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert not (dagster_setup.exports / "daily").exists() or not dagster_setup.daily_files()


def test_partitions_stay_within_the_guidance_for_1000_accounts_and_10_years(
    dagster_setup: Setup,
) -> None:
    """Accounts are not a dimension: adding 1,000 accounts adds no partition."""
    today = dt.datetime.now(dt.UTC).date()
    ten_years_ago = today.replace(year=today.year - 10)
    with dagster_setup.engine.begin() as connection:
        connection.execute(
            sa.insert(sa.table("accounts", sa.column("id"), sa.column("account_code"))),
            [{"id": account_id(f"BULK{n}"), "account_code": f"BULK{n}"} for n in range(1000)],
        )
    defs = build_definitions(timezone="UTC", first_day=ten_years_ago)
    partitions = defs.resolve_assets_def(ASSET).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    count = len(partitions.get_partition_keys())
    assert 3650 <= count <= 3653 < 100_000
