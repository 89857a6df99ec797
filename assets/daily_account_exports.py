"""`daily_account_exports`: every account's records of a sale day, one file per account and format.

Partitioned by sale day only (pipelines.partitions). A run of a day, or of a range of days
(a backfill runs as one run: `BackfillPolicy.single_run`), writes
`EXPORTS_DIR/daily/<account>/<YYYY>/<MM>/<account>_<YYYY-MM-DD>.<ext>` for each account
that has records that day, in every configured format, through `record_exports.daily`:
one ordered read per month of days, split into files. An account-day without records
gets no file, and a file whose records are gone is removed.

Each day is recorded as materialized as soon as its files are written, so a long
backfill shows its progress, and a failure keeps the days already done. A failed
account-day fails the run at the end, naming the account and day; the other files stay.
"""

# No `from __future__ import annotations`: Dagster reads the asset's type annotations at runtime.

import datetime as dt
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
from pydantic import Field

from pipelines.integrity import DAILY_CHECK_NAME, check_result, daily_check_spec
from pipelines.partitions import partition_day
from pipelines.pool_slots import records_database_slot
from pipelines.step_errors import export_step_errors
from record_exports.daily import DailyExportError, DailySelection, DayOutcome, export_days
from record_exports.errors import ExportInputError
from record_exports.integrity import DailyCheckSummary, DailyFileToCheck, iter_daily_checks
from record_exports.params import ExportFormat, parse_export_params
from resources.export_storage import ExportStorage
from resources.records_database import RecordsDatabase

ASSET_NAME = "daily_account_exports"
DEFAULT_FORMATS = ["csv", "xlsx"]
# Rows of the per-account table in a day's metadata; the totals count every account.
TABLE_ROWS = 100


class DailyExportsConfig(dg.Config):
    """Which files a run writes; the defaults are what accountants open every morning."""

    formats: list[str] = Field(
        default=DEFAULT_FORMATS,
        description="File formats to write for each account and day: csv, ndjson, json, "
        "xlsx, parquet.",
    )
    account_codes: list[str] = Field(
        default=[],
        description="Accounts to export (empty: every account). changed_records_sensor "
        "names the accounts whose records changed.",
    )


def selection_for(
    first_day: dt.date, last_day: dt.date, config: DailyExportsConfig
) -> DailySelection:
    """The days and files a run writes; bad config is `ExportInputError` naming the field."""
    if not config.formats:
        raise ExportInputError(
            "formats", "name at least one format: csv, ndjson, json, xlsx, parquet"
        )
    formats = tuple(
        dict.fromkeys(parse_export_params({"format": name}).format for name in config.formats)
    )
    codes = parse_export_params({"account_codes": list(config.account_codes)}).account_codes
    return DailySelection(first_day, last_day, formats, codes)


def day_table(outcome: DayOutcome, formats: Sequence[ExportFormat]) -> dg.TableMetadataValue:
    """One row per account (the first `TABLE_ROWS`): rows, bytes and the file of each format."""
    by_account: dict[str, dict[str, str | int]] = {}
    for file in outcome.files:
        row = by_account.setdefault(
            file.account_code, {"account": file.account_code, "rows": file.row_count, "bytes": 0}
        )
        row["bytes"] = int(row["bytes"]) + file.bytes
        row[file.format] = str(file.path)
    columns = [
        dg.TableColumn("account", "string"),
        dg.TableColumn("rows", "int"),
        dg.TableColumn("bytes", "int", description="all formats together"),
        *(dg.TableColumn(fmt.value, "path") for fmt in formats),
    ]
    records = [dg.TableRecord(row) for _, row in sorted(by_account.items())[:TABLE_ROWS]]
    return dg.MetadataValue.table(records, dg.TableSchema(columns))


def files_to_check(outcome: DayOutcome) -> list[DailyFileToCheck]:
    return [
        DailyFileToCheck(f.account_code, f.day, ExportFormat(f.format), f.path)
        for f in outcome.files
    ]


def day_materialization(
    asset_key: dg.AssetKey, outcome: DayOutcome, root: Path, formats: Sequence[ExportFormat]
) -> dg.AssetMaterialization:
    day = outcome.day
    accounts = len({file.account_code for file in outcome.files})
    total_bytes = sum(file.bytes for file in outcome.files)
    listed = "" if accounts <= TABLE_ROWS else f" (the table lists the first {TABLE_ROWS})"
    description = (
        f"{len(outcome.files)} files of {day} for {accounts} account(s){listed}, in "
        f"{root}/<account>/{day:%Y}/{day:%m}/<account>_{day}.<ext>"
    )
    if outcome.removed:
        description += f"; {len(outcome.removed)} files removed (their records are gone)"
    return dg.AssetMaterialization(
        asset_key=asset_key,
        partition=day.isoformat(),
        description=description,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(outcome.rows),
            "accounts": dg.MetadataValue.int(accounts),
            "files": dg.MetadataValue.int(len(outcome.files)),
            "bytes": dg.MetadataValue.int(total_bytes),
            "removed_files": dg.MetadataValue.int(len(outcome.removed)),
            "changes_covered": dg.MetadataValue.int(outcome.changes_covered),
            "truncated_cells": dg.MetadataValue.int(
                sum(file.truncated_cells for file in outcome.files)
            ),
            "path": dg.MetadataValue.path(str(root)),
            "files_by_account": day_table(outcome, formats),
        },
    )


def build_daily_account_exports(
    partitions_def: dg.DailyPartitionsDefinition,
) -> dg.AssetsDefinition:
    """The asset over the given sale days (they depend on EXPORTS_FIRST_DAY and
    EXPORTS_TIMEZONE, read when the definitions load)."""

    # `backfill_policy` is beta in Dagster 1.13 and says so on every load; the policy is what
    # makes a backfill one run instead of one per day.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Parameter `backfill_policy`", dg.BetaWarning)
        return _daily_account_exports(partitions_def)


def _daily_account_exports(partitions_def: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=ASSET_NAME,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        output_required=False,
        description=__doc__,
        kinds={"csv", "excel"},
        check_specs=[daily_check_spec(ASSET_NAME)],
    )
    def daily_account_exports(
        context: dg.AssetExecutionContext,
        config: DailyExportsConfig,
        records_database: RecordsDatabase,
        export_storage: ExportStorage,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult]:
        days = context.partition_key_range
        with export_step_errors(context, what="daily export"), records_database_slot(context):
            selection = selection_for(partition_day(days.start), partition_day(days.end), config)
            root = export_storage.daily_root()
            outcomes = export_days(
                records_database.target(),
                selection,
                root,
                run_id=context.run.run_id,
                rows_per_sheet=export_storage.xlsx_rows_per_sheet,
                on_chunk=lambda chunk: context.log.info(
                    f"{chunk.first_day}..{chunk.last_day}: {chunk.rows:,} rows, "
                    f"{chunk.files:,} files in {chunk.seconds:.1f} s"
                ),
                on_wait=lambda day: context.log.info(
                    f"waiting for another export of {day} to finish (one at a time per day)"
                ),
            )
            written: list[DailyFileToCheck] = []
            try:
                for outcome in outcomes:
                    for failure in outcome.failures:
                        context.log.error(f"not written: {failure.text()}")
                    if not outcome.failures:
                        yield day_materialization(
                            context.asset_key, outcome, root, selection.formats
                        )
                    written += files_to_check(outcome)
                check_key = dg.AssetCheckKey(context.asset_key, DAILY_CHECK_NAME)
                if check_key in context.selected_asset_check_keys:
                    started = time.monotonic()
                    with records_database.engine() as engine:
                        checks = iter_daily_checks(
                            engine, written, selection.first_day, selection.last_day
                        )
                        summary = DailyCheckSummary.of(checks)
                    yield check_result(summary, started, context.asset_key)
            except DailyExportError as error:
                raise dg.Failure(
                    description=str(error),
                    metadata={
                        "failed": dg.MetadataValue.md(
                            "\n".join(f"- {failure.text()}" for failure in error.failures[:100])
                        )
                    },
                ) from error

    return daily_account_exports
