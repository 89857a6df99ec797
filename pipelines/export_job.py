"""The `export_records` job: one on-demand export, configured in the Launchpad or by the CLI."""

# No `from __future__ import annotations`: Dagster reads the op's type annotations at runtime.


import datetime as dt
from pathlib import Path
from typing import Literal

import dagster as dg

from pipelines.run_metadata import export_metadata, log_result
from record_exports.engine import ExportResult, run_export
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams, parse_export_params
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase

EXPORT_REQUEST_TAG = "export_request_id"


class ExportConfig(dg.Config):
    """One export. Field names and defaults are the contract of interfaces.md."""

    format: Literal["csv", "ndjson", "json", "xlsx", "parquet"] = "csv"
    account_codes: list[str] = []
    statuses: list[str] = []
    sale_date_from: str | None = None
    sale_date_to: str | None = None
    columns: list[str] = []
    include_remarks: bool = False
    money: Literal["cents", "dollars"] = "cents"
    bom: bool = False
    excel_safe: bool = False
    compression: Literal["none", "gzip", "zstd"] = "none"
    output_name: str | None = None


def validated_params(config: ExportConfig) -> ExportParams:
    """Parse the config, turning bad input into a `Failure` that names the field."""
    try:
        return parse_export_params(config.model_dump())
    except ExportInputError as error:
        raise dg.Failure(
            description=f"Invalid export config: {error}",
            metadata={"field": error.field},
            allow_retries=False,
        ) from None


def default_file_stem(run_id: str) -> str:
    return f"records_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}_{run_id[:8]}"


def export_destination(
    context: dg.OpExecutionContext, params: ExportParams, storage: ExportStorage
) -> Path:
    """Request runs write to `requests/<id>/`; everything else to the on-demand folder."""
    file_name = params.file_name(default_file_stem(context.run_id))
    request_id = context.run.tags.get(EXPORT_REQUEST_TAG)
    if request_id is not None:
        return storage.request_path(int(request_id), file_name)
    return storage.on_demand_path(file_name)


@dg.op(name="export", description="Export the selected records to one file with its manifest.")
def export_op(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    records_database: RecordsDatabase,
    export_storage: ExportStorage,
    progress_reporter: ProgressReporter,
) -> dg.Output[str]:
    params = validated_params(config)
    destination = export_destination(context, params, export_storage)
    try:
        result: ExportResult = run_export(
            records_database.target(),
            params,
            destination,
            run_id=context.run_id,
            progress=progress_reporter.callback(context.log, destination.name),
            rows_per_sheet=export_storage.xlsx_rows_per_sheet,
        )
    except ExportInputError as error:
        raise dg.Failure(
            description=f"Invalid export config: {error}",
            metadata={"field": error.field},
            allow_retries=False,
        ) from None
    log_result(context.log, result)
    return dg.Output(str(result.path), metadata=export_metadata(result))


@dg.job(name="export_records", description="One on-demand export of bookkeeping records.")
def export_records() -> None:
    export_op()
