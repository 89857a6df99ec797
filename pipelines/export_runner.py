"""Running `export_records` from the command line: checks first, then a recorded Dagster run.

The run belongs to the code location's `export_records` job like a run launched in the UI
(`location_runs`): it is listed on the job's page, re-executes without a version warning, and
is tagged `source=cli` with its format and accounts. It runs in this process, so an export
costs what the engine does plus Dagster's fixed cost of recording a run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import dagster as dg

from pipelines.dagster_events import (
    output_metadata,
    step_failure_message,
    step_failures,
    step_was_interrupted,
)
from pipelines.definitions import defs
from pipelines.export_job import EXPORT_JOB, export_run_tags
from pipelines.interrupts import queries_cancelled_on_interrupt
from pipelines.location_runs import execute_location_run
from pipelines.output_target import OutputTarget
from pipelines.pool_slots import WAITING_MESSAGES
from pipelines.terminal_progress import only_handler, progress_bar
from record_exports.database import connect_checked, require_records_schema
from record_exports.engine import resolve_account_ids
from record_exports.params import ExportParams
from record_exports.settings import RECORDS_DATABASE_URL

CLI_SOURCE = "cli"
# The CLI prints its own one-line outcome; the full run log stays in the Dagster instance.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class JobOutcome:
    success: bool
    run_id: str
    path: str | None = None
    row_count: int | None = None
    error: str | None = None
    truncated_cells: int = 0


def check_inputs(params: ExportParams) -> None:
    """What a run would reject, found before a run starts: database and account codes."""
    engine = connect_checked(RECORDS_DATABASE_URL.value())
    try:
        require_records_schema(engine)
        resolve_account_ids(engine, params.account_codes)
    finally:
        engine.dispose()


def run_config_for(params: ExportParams, output: OutputTarget | None) -> dict[str, Any]:
    """Validated params in the run config's canonical form (`CSV` typed on the command line
    is `csv` here), so Dagster's config check never sees a value the parser accepted.

    `--output` is run config of the `export_storage` resource (its folder as the root, no
    on-demand subfolder) rather than another resource object: the job stays the location's
    own, and the run's config in the UI says where the file went.
    """
    config: dict[str, Any] = {"ops": {"export": {"config": params.to_config()}}, **QUIET_LOGS}
    if output is not None:
        folder = str(output.folder.resolve())
        config["resources"] = {
            "export_storage": {"config": {"root": folder, "on_demand_folder": ""}}
        }
    return config


@contextmanager
def waiting_lines_on(stream: TextIO) -> Iterator[None]:
    """Print "waiting for a records_database slot: ..." on `stream` (a terminal or not) while
    the block runs: an export held behind busy slots says so instead of looking hung."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    with only_handler(WAITING_MESSAGES, handler):
        yield


def run_export_job(
    params: ExportParams, *, output: OutputTarget | None, terminal: bool
) -> JobOutcome:
    with queries_cancelled_on_interrupt(RECORDS_DATABASE_URL.value()):
        return _run_export_job(params, output=output, terminal=terminal)


def _run_export_job(
    params: ExportParams, *, output: OutputTarget | None, terminal: bool
) -> JobOutcome:
    check_inputs(params)
    with (
        dg.DagsterInstance.get() as instance,
        waiting_lines_on(sys.stderr),
        progress_bar(sys.stderr, enabled=terminal),
    ):
        run = execute_location_run(
            instance,
            defs,
            EXPORT_JOB,
            run_config_for(params, output),
            export_run_tags(params, CLI_SOURCE),
        )
        metadata = output_metadata(instance, run.run_id)
        failures = step_failures(instance, run.run_id)
    if run.status is not dg.DagsterRunStatus.SUCCESS and step_was_interrupted(failures):
        return JobOutcome(
            False,
            run.run_id,
            error=f"interrupted (Ctrl-C or SIGTERM); run {run.run_id} is marked failed, its "
            "records_database slot is free, and no file was written",
        )
    if run.status is not dg.DagsterRunStatus.SUCCESS:
        error = step_failure_message(failures)
        return JobOutcome(
            False,
            run.run_id,
            error=error or f"run {run.run_id} failed; see its log in the Dagster UI",
        )
    return JobOutcome(
        True,
        run.run_id,
        path=str(metadata["path"]),
        row_count=int(metadata["dagster/row_count"]),
        truncated_cells=int(metadata.get("truncated_cells", 0)),
    )
