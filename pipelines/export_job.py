"""The `export_records` job: one on-demand export, configured in the Launchpad or by the CLI."""

# No `from __future__ import annotations`: Dagster reads the op's type annotations at runtime.

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import dagster as dg
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.concurrency import RECORDS_DATABASE_POOL
from pipelines.run_metadata import export_metadata, log_result
from pipelines.step_errors import export_step_errors
from record_exports.engine import ExportResult, run_export
from record_exports.params import (
    Compression,
    ExportFormat,
    ExportParams,
    MoneyMode,
    choices,
    parse_export_params,
)
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase

EXPORT_REQUEST_TAG = "export_request_id"


def values_of(enum: type[StrEnum]) -> Any:
    """`Literal["csv", "ndjson", ...]`: the enum's values as a config field type.

    Not the enum itself: Dagster's config schema for a Python `Enum` takes member names
    (`CSV`), while run configs, request rows and the Launchpad spell the values (`csv`).
    """
    return Literal[choices(enum)]


# mypy cannot read a Literal built at runtime; to it these are plain strings.
if TYPE_CHECKING:
    FormatValue: TypeAlias = str
    MoneyValue: TypeAlias = str
    CompressionValue: TypeAlias = str
else:
    FormatValue = values_of(ExportFormat)
    MoneyValue = values_of(MoneyMode)
    CompressionValue = values_of(Compression)

_DEFAULTS = ExportParams().to_config()


class ExportConfig(dg.Config):
    """One export: the fields of `ExportParams` (record_exports/params.py), which validates
    them, with its defaults. Field names are the contract of interfaces.md."""

    format: FormatValue = _DEFAULTS["format"]
    account_codes: list[str] = []
    statuses: list[str] = []
    sale_date_from: str | None = None
    sale_date_to: str | None = None
    columns: list[str] = []
    include_remarks: bool = _DEFAULTS["include_remarks"]
    money: MoneyValue = _DEFAULTS["money"]
    bom: bool = _DEFAULTS["bom"]
    excel_safe: bool = _DEFAULTS["excel_safe"]
    compression: CompressionValue = _DEFAULTS["compression"]
    output_name: str | None = None

    def export_params(self) -> ExportParams:
        """The validated export; raises `ExportInputError` naming the field."""
        return parse_export_params(self.model_dump())


def default_file_stem(run_id: str) -> str:
    return f"records_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}_{run_id[:8]}"


def export_destination(
    context: dg.OpExecutionContext, params: ExportParams, storage: ExportStorage
) -> Path:
    """Request runs write to `requests/<id>/`; everything else to the on-demand folder."""
    file_name = params.file_name(default_file_stem(context.run_id))
    request_id = request_id_of(context.run)
    if request_id is not None:
        return storage.request_path(request_id, file_name)
    return storage.on_demand_path(file_name)


def request_id_of(run: dg.DagsterRun) -> int | None:
    """The `export_requests` row a run serves, from its `export_request_id` tag."""
    value = run.tags.get(EXPORT_REQUEST_TAG)
    return int(value) if value is not None and value.isdigit() else None


def _export(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    records_database: RecordsDatabase,
    engine: Engine,
    export_storage: ExportStorage,
    progress_reporter: ProgressReporter,
) -> ExportResult:
    params = config.export_params()
    destination = export_destination(context, params, export_storage)
    return run_export(
        records_database.target(),
        params,
        destination,
        run_id=context.run_id,
        progress=progress_reporter.callback(context.log, destination.name),
        rows_per_sheet=export_storage.xlsx_rows_per_sheet,
        engine=engine,
    )


@dg.op(
    name="export",
    description="Export the selected records to one file with its manifest.",
    pool=RECORDS_DATABASE_POOL,
)
def export_op(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    records_database: RecordsDatabase,
    export_storage: ExportStorage,
    progress_reporter: ProgressReporter,
) -> dg.Output[str]:
    """Runs started for an `export_requests` row also write the row's progress back:
    `running` at the start, `succeeded` with path and row count at the end, `failed` with
    the error when the step gives up (transient database errors are retried first). The
    run-status sensors write the same outcome again, which changes nothing; they alone
    cover runs that die before or outside this step. Every write-back and the account
    lookup use the resource's one engine."""
    request_id = request_id_of(context.run)

    def write_failure(message: str) -> None:
        if request_id is not None:
            with records_database.engine() as engine:
                request_store.mark_failed(engine, request_id, message, run_id=context.run_id)

    with export_step_errors(context, on_give_up=write_failure), records_database.engine() as engine:
        if request_id is not None:
            request_store.mark_running(engine, request_id, context.run_id)
        result = _export(
            context, config, records_database, engine, export_storage, progress_reporter
        )
        if request_id is not None:
            request_store.mark_succeeded(
                engine, request_id, context.run_id, str(result.path), result.row_count
            )
    log_result(context.log, result)
    return dg.Output(str(result.path), metadata=export_metadata(result))


@dg.job(name="export_records", description="One on-demand export of bookkeeping records.")
def export_records() -> None:
    export_op()
