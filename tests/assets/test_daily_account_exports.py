"""`daily_account_exports` materialized in process: real instance, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import openpyxl
import polars as pl

from pipelines.partitions import partition_key, split_partition_key
from tests.dagster_support import Setup, busiest_partitions, live_count

ASSET = dg.AssetKey("daily_account_exports")


def daily_file(setup: Setup, code: str, day: dt.date, extension: str) -> str:
    return str(
        setup.exports / "daily" / code / f"{day:%Y}" / f"{day:%m}" / f"{code}_{day}.{extension}"
    )


def materialization(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = result.asset_materializations_for_node("daily_account_exports")
    return {key: value.value for key, value in event.metadata.items()}


def test_one_partition_writes_csv_and_xlsx_with_metadata(dagster_setup: Setup) -> None:
    dagster_setup.register_accounts()
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    key = str(partition_key(code, day))
    assert key == f"{code}|{day.isoformat()}"

    result = dagster_setup.materialize(key)

    assert result.success
    expected = live_count(dagster_setup.engine, code, day)
    assert expected > 0
    csv = pl.read_csv(daily_file(dagster_setup, code, day, "csv"))
    assert csv.height == expected
    assert set(csv["sale_date"].cast(pl.String)) == {day.isoformat()}
    sheet = openpyxl.load_workbook(daily_file(dagster_setup, code, day, "xlsx"), read_only=True)
    assert sheet["Records"].max_row == expected + 1
    metadata = materialization(result)
    assert metadata["dagster/row_count"] == expected
    assert metadata["format"] == "csv, xlsx"
    assert metadata["path"] == {
        "csv": daily_file(dagster_setup, code, day, "csv"),
        "xlsx": daily_file(dagster_setup, code, day, "xlsx"),
    }
    assert set(metadata["sha256"]) == {"csv", "xlsx"}  # type: ignore[arg-type]
    assert metadata["filters"] == {
        "account_codes": [code],
        "statuses": [],
        "sale_date_from": day.isoformat(),
        "sale_date_to": day.isoformat(),
    }
    assert "columns" in metadata and "bytes" in metadata


def test_several_partitions_and_configured_formats(dagster_setup: Setup) -> None:
    dagster_setup.register_accounts()
    partitions = busiest_partitions(dagster_setup.engine, 3)
    for code, day in partitions:
        assert dagster_setup.materialize(
            str(partition_key(code, day)), ["parquet", "ndjson"]
        ).success

    materialized = dagster_setup.instance.get_materialized_partitions(ASSET)
    assert materialized == {str(partition_key(code, day)) for code, day in partitions}
    for code, day in partitions:
        frame = pl.read_parquet(daily_file(dagster_setup, code, day, "parquet"))
        assert frame.height == live_count(dagster_setup.engine, code, day)
        lines = Path(daily_file(dagster_setup, code, day, "ndjson")).read_text().splitlines()
        assert len(lines) == frame.height
    assert not list(dagster_setup.exports.rglob("*.csv"))


def test_empty_partition_writes_header_only(dagster_setup: Setup) -> None:
    """A day without sales still gets its file: "no records" is an answer too."""
    [code, *_] = dagster_setup.register_accounts()
    day = dt.date(2025, 11, 29)
    while live_count(dagster_setup.engine, code, day):
        day += dt.timedelta(days=1)
    result = dagster_setup.materialize(str(partition_key(code, day)), ["csv"])
    assert result.success
    assert materialization(result)["dagster/row_count"] == 0
    assert pl.read_csv(daily_file(dagster_setup, code, day, "csv")).height == 0


def test_bad_format_fails_naming_the_field(dagster_setup: Setup) -> None:
    [code, *_] = dagster_setup.register_accounts()
    result = dagster_setup.daily_job().execute_in_process(
        instance=dagster_setup.instance,
        partition_key=str(partition_key(code, dt.date(2026, 1, 5))),
        run_config={"ops": {"daily_account_exports": {"config": {"formats": ["docx"]}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "format" in failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert not dagster_setup.exports.exists()


def test_split_partition_key_round_trips() -> None:
    key = partition_key("ACC12", dt.date(2026, 2, 3))
    assert split_partition_key(key) == ("ACC12", dt.date(2026, 2, 3))
    assert split_partition_key(str(key)) == ("ACC12", dt.date(2026, 2, 3))
