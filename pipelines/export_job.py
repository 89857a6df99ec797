"""The `export_records` job: one on-demand export, configured in the Launchpad or by the CLI."""

# No `from __future__ import annotations`: Dagster reads the op's type annotations at runtime.

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.pool_slots import records_database_slot
from pipelines.request_store import EXPORT_REQUEST_TAG
from pipelines.run_metadata import export_metadata, log_result
from pipelines.step_errors import export_step_errors
from record_exports.columns import ALL_COLUMNS
from record_exports.engine import ExportResult, run_export, unknown_account_codes
from record_exports.params import (
    FIELD_HELP,
    AccountCheck,
    Compression,
    ExportFormat,
    ExportParams,
    MoneyMode,
    choices,
    parse_export_params,
)
from record_exports.schema import STATUSES
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase

EXPORT_JOB = "export_records"
OUTPUT_NAME = "file"

SOURCE_TAG, FORMAT_TAG, ACCOUNTS_TAG = "source", "format", "accounts"
MAX_ACCOUNTS_TAG_LENGTH = 100


def values_of(enum: type[StrEnum]) -> Any:
    """`Literal["csv", "ndjson", ...]`: the enum's values as a config field type.

    Not the enum itself: Dagster's config schema for a Python `Enum` takes member names
    (`CSV`), while run configs, request rows and the Launchpad spell the values (`csv`).
    Dagster names the config type after the Literal, so a wrong value's error in the
    Launchpad lists the valid ones.
    """
    return Literal[choices(enum)]


def one_of(values: Sequence[str]) -> Any:
    """An item type for a list field that takes exactly `values` (Dagster turns a `Literal`
    into a config enum only for a whole field, not for list items). An `Enum` whose member
    names are the values; named like Dagster names Literals, so the Launchpad's error for a
    wrong item lists the valid ones too."""
    name = "Literal[" + ", ".join(repr(value) for value in values) + "]"
    return StrEnum(name, {value: value for value in values})


# mypy cannot read a type built at runtime; to it these are plain strings.
if TYPE_CHECKING:
    FormatValue: TypeAlias = str
    MoneyValue: TypeAlias = str
    CompressionValue: TypeAlias = str
    StatusValue: TypeAlias = str
    ColumnValue: TypeAlias = str
else:
    FormatValue = values_of(ExportFormat)
    MoneyValue = values_of(MoneyMode)
    CompressionValue = values_of(Compression)
    StatusValue = one_of(STATUSES)
    ColumnValue = one_of(list(ALL_COLUMNS))

_DEFAULTS = ExportParams().to_config()


def option(name: str) -> Any:
    """A config field of option `name`: its default from `ExportParams` (an empty text for
    the optional ones, so the Launchpad's pre-filled config shows them too) and its
    description from `FIELD_HELP`."""
    return Field(default=_DEFAULTS.get(name, ""), description=FIELD_HELP[name])


class ExportConfig(dg.Config):
    """One export: the fields of `ExportParams` (record_exports/params.py), which validates
    them, with its defaults. Field names are the contract of interfaces.md.

    Dagster checks the enums (`format`, `money`, `compression`, each status and column) in
    the Launchpad, before a run starts; what only the parser or the database can tell (a
    date's validity, options that do not fit the format, unknown account codes) fails the run
    at its start, naming every bad field. Dagster lets every field with a default be `null`
    (except the Literals), so the fields accept None, which the parser reads as not given.
    """

    format: FormatValue = option("format")
    account_codes: list[str] | None = option("account_codes")
    statuses: list[StatusValue] | None = option("statuses")
    sale_date_from: str | None = option("sale_date_from")
    sale_date_to: str | None = option("sale_date_to")
    columns: list[ColumnValue] | None = option("columns")
    include_remarks: bool | None = option("include_remarks")
    money: MoneyValue = option("money")
    bom: bool | None = option("bom")
    excel_safe: bool | None = option("excel_safe")
    compression: CompressionValue = option("compression")
    output_name: str | None = option("output_name")

    def export_params(self, unknown_accounts: AccountCheck | None = None) -> ExportParams:
        """The validated export; raises `ExportInputError` naming every bad field."""
        return parse_export_params(self.model_dump(), unknown_accounts)


def accounts_tag(codes: Sequence[str]) -> str:
    """`ACC1,ACC2`, `all` for no codes; a long list is cut with a count of the rest."""
    if not codes:
        return "all"
    text = ",".join(codes)
    if len(text) <= MAX_ACCOUNTS_TAG_LENGTH:
        return text
    shown: list[str] = []
    for code in codes:
        if len(",".join([*shown, code])) > MAX_ACCOUNTS_TAG_LENGTH - 20:
            break
        shown.append(code)
    return f"{','.join(shown)} and {len(codes) - len(shown)} more"


def export_run_tags(params: ExportParams, source: str) -> dict[str, str]:
    """What tells export runs apart in the runs list: who started it (`cli`, `request`), the
    format and the accounts."""
    return {
        SOURCE_TAG: source,
        FORMAT_TAG: params.format.value,
        ACCOUNTS_TAG: accounts_tag(params.account_codes),
    }


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
    params = config.export_params(partial(unknown_account_codes, engine))
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
    out={
        OUTPUT_NAME: dg.Out(
            dg.Nothing,
            description="The export file, described by this output's metadata (path, rows, "
            "bytes, sha256, columns, filters). Nothing is stored besides the file itself.",
        )
    },
)
def export_op(
    context: dg.OpExecutionContext,
    config: ExportConfig,
    records_database: RecordsDatabase,
    export_storage: ExportStorage,
    progress_reporter: ProgressReporter,
) -> None:
    """Runs started for an `export_requests` row also write the row's progress back:
    `running` at the start, `succeeded` with path and row count at the end, `failed` with
    the error when the step gives up (transient database errors are retried first). The
    run-status sensors write the same outcome again, which changes nothing; they alone
    cover runs that die before or outside this step. Every write-back and the account
    lookup use the resource's one engine. The step holds a `records_database` slot while
    it works (`pipelines/pool_slots.py`), waiting for one when the pool is full.

    The output is `Nothing`: its metadata is the export's description, and Dagster's IO
    manager stores no copy of it (a pickled path under the instance folder would read like
    a second export file)."""
    request_id = request_id_of(context.run)

    def write_failure(message: str) -> None:
        if request_id is not None:
            with records_database.engine() as engine:
                request_store.mark_failed(engine, request_id, message, run_id=context.run_id)

    with (
        export_step_errors(context, on_give_up=write_failure),
        records_database_slot(context),
        records_database.engine() as engine,
    ):
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
    context.add_output_metadata(export_metadata(result), output_name=OUTPUT_NAME)


@dg.job(name=EXPORT_JOB, description="One on-demand export of bookkeeping records.")
def export_records() -> None:
    export_op()
