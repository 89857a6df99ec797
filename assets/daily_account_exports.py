"""`daily_account_exports`: one account's records of one sale day, as files in each format.

Partitioned by account × sale day (pipelines.partitions); each partition writes
`EXPORTS_DIR/daily/<account>/<YYYY>/<MM>/<account>_<YYYY-MM-DD>.<ext>` for every format
in its config, through the same `run_export` as the `export_records` job. Materializing
a partition again (a backfill, the nightly schedule, `changed_records_sensor`) replaces
its files atomically.
"""

# No `from __future__ import annotations`: Dagster reads the asset's type annotations at runtime.

from typing import Any

import dagster as dg

from pipelines.concurrency import RECORDS_DATABASE_POOL
from pipelines.partitions import split_partition_key
from pipelines.run_metadata import log_result
from pipelines.step_errors import export_step_errors
from record_exports.engine import ExportResult, run_export
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams, parse_export_params
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase

ASSET_NAME = "daily_account_exports"
DEFAULT_FORMATS = ["csv", "xlsx"]


class DailyExportsConfig(dg.Config):
    """Which files each partition writes (csv, ndjson, json, xlsx, parquet; checked by
    `parse_export_params`); the default is what accountants open."""

    formats: list[str] = DEFAULT_FORMATS


def partition_params(account_code: str, day: str, formats: list[str]) -> list[ExportParams]:
    """One export per format of one account's records of one sale day."""
    if not formats:
        raise ExportInputError("formats", "name at least one format")
    return [
        parse_export_params(
            {
                "format": name,
                "account_codes": [account_code],
                "sale_date_from": day,
                "sale_date_to": day,
            }
        )
        for name in dict.fromkeys(formats)
    ]


def materialization_metadata(results: list[ExportResult]) -> dict[str, Any]:
    """The job's metadata names, for several files: `path`, `bytes` and `sha256` map each
    format to its file; row count, columns and filters are the same for every format."""
    first = results[0]
    return {
        "dagster/row_count": dg.MetadataValue.int(first.row_count),
        "path": dg.MetadataValue.json({r.format: str(r.path) for r in results}),
        "bytes": dg.MetadataValue.json({r.format: r.bytes for r in results}),
        "sha256": dg.MetadataValue.json({r.format: r.sha256 for r in results}),
        "format": dg.MetadataValue.text(", ".join(r.format for r in results)),
        "columns": dg.MetadataValue.json(first.columns),
        "filters": dg.MetadataValue.json(first.filters),
        "money": dg.MetadataValue.text(first.money),
        "seconds": dg.MetadataValue.float(round(sum(r.seconds for r in results), 3)),
        "truncated_cells": dg.MetadataValue.int(sum(r.truncated_cells for r in results)),
    }


def _write_partition(
    context: dg.AssetExecutionContext,
    config: DailyExportsConfig,
    records_database: RecordsDatabase,
    export_storage: ExportStorage,
    progress_reporter: ProgressReporter,
) -> list[ExportResult]:
    account_code, day = split_partition_key(context.partition_key)
    results = []
    for params in partition_params(account_code, day.isoformat(), list(config.formats)):
        destination = export_storage.daily_path(account_code, day, params.format.extension)
        result = run_export(
            records_database.target(),
            params,
            destination,
            run_id=context.run.run_id,
            progress=progress_reporter.callback(context.log, destination.name),
            rows_per_sheet=export_storage.xlsx_rows_per_sheet,
        )
        log_result(context.log, result)
        results.append(result)
    return results


def build_daily_account_exports(
    partitions_def: dg.MultiPartitionsDefinition,
) -> dg.AssetsDefinition:
    """The asset over the given partitions (their day dimension depends on EXPORTS_TIMEZONE)."""

    @dg.asset(
        name=ASSET_NAME,
        partitions_def=partitions_def,
        pool=RECORDS_DATABASE_POOL,
        description=__doc__,
        kinds={"csv", "excel"},
    )
    def daily_account_exports(
        context: dg.AssetExecutionContext,
        config: DailyExportsConfig,
        records_database: RecordsDatabase,
        export_storage: ExportStorage,
        progress_reporter: ProgressReporter,
    ) -> dg.MaterializeResult:
        with export_step_errors(context, what="daily export"):
            results = _write_partition(
                context, config, records_database, export_storage, progress_reporter
            )
        return dg.MaterializeResult(metadata=materialization_metadata(results))

    return daily_account_exports
