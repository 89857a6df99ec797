"""The `export_records` job: one on-demand export, configured in the Launchpad or by the CLI."""

# No `from __future__ import annotations`: Dagster reads the op's type annotations at runtime.

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.integrity import request_check_failure, request_check_metadata
from pipelines.pool_slots import records_database_slot
from pipelines.request_store import EXPORT_REQUEST_TAG
from pipelines.run_metadata import export_metadata, log_result
from pipelines.step_errors import export_step_errors
from record_exports.columns import ALL_COLUMNS
from record_exports.engine import (
    ExportResult,
    resolve_account_ids,
    run_export,
    unknown_account_codes,
)
from record_exports.errors import ExportInputError, InputProblem
from record_exports.integrity import check_export, latest_change
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


ENV_SOURCED = (
    "takes its value as written, not {env: ...}: an export option read from an environment "
    "variable could put that variable's value (a password) into the run's error and log"
)


def _names_a_variable(value: Any) -> bool:
    if isinstance(value, Mapping):
        return "env" in value
    if isinstance(value, list):
        return any(_names_a_variable(item) for item in value)
    return False


def refuse_env_sourced_options(run_config: Mapping[str, Any]) -> None:
    """Raise `ExportInputError` naming every option of the `export` op given as `{env: VAR}`.

    Dagster lets every text and bool config field come from an environment variable and
    resolves it before the step starts, so a Launchpad config `sale_date_from: {env:
    RECORDS_DATABASE_URL}` would reach the parser as the URL, and the parser's error quotes
    the bad value. The run's own config (`DagsterRun.run_config`) still holds what the user
    wrote, so the step looks there first. CLI options and request rows cannot name a variable.
    """
    options = run_config.get("ops", {}).get("export", {}).get("config") or {}
    named = [name for name, value in options.items() if _names_a_variable(value)]
    if named:
        raise ExportInputError(
            named[0], ENV_SOURCED, *(InputProblem(name, ENV_SOURCED) for name in named[1:])
        )


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
    params: ExportParams,
    records_database: RecordsDatabase,
    engine: Engine,
    export_storage: ExportStorage,
    progress_reporter: ProgressReporter,
) -> ExportResult:
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

    checked: dict[str, dg.MetadataValue] = {}
    with export_step_errors(context, on_give_up=write_failure):
        refuse_env_sourced_options(context.run.run_config)
        with records_database_slot(context), records_database.engine() as engine:
            if request_id is not None:
                request_store.mark_running(engine, request_id, context.run_id)
                since_change = latest_change(engine)
            params = config.export_params(partial(unknown_account_codes, engine))
            result = _export(
                context, params, records_database, engine, export_storage, progress_reporter
            )
            if request_id is not None:
                checked = verify_request_file(context, params, engine, result, since_change)
                request_store.mark_succeeded(
                    engine, request_id, context.run_id, str(result.path), result.row_count
                )
    log_result(context.log, result)
    context.add_output_metadata({**export_metadata(result), **checked}, output_name=OUTPUT_NAME)


def verify_request_file(
    context: dg.OpExecutionContext,
    params: ExportParams,
    engine: Engine,
    result: ExportResult,
    since_change: int,
) -> dict[str, dg.MetadataValue]:
    """A request's file against the database (pipelines/integrity.py): its metadata, or a
    `Failure` with the numbers, which fails the step and the request row."""
    started = time.monotonic()
    account_ids = resolve_account_ids(engine, params.account_codes)
    check = check_export(engine, params, account_ids, result.path, since_change)
    if not check.passed:
        raise request_check_failure(check)
    if check.changed:
        context.log.warning(
            "integrity check skipped: records of this export changed after it read them "
            f"({'; '.join(d.text() for d in check.differences[:3])})"
        )
    else:
        context.log.info(f"integrity check passed: {check.database.rows:,} rows and money sums")
    return request_check_metadata(check, time.monotonic() - started)


@dg.job(name=EXPORT_JOB, description="One on-demand export of bookkeeping records.")
def export_records() -> None:
    export_op()
