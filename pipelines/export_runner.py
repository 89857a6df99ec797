"""Running `export_records` from the command line: checks first, then a recorded Dagster run."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.definitions import build_definitions
from record_exports.database import connect_checked
from record_exports.engine import resolve_account_ids
from record_exports.params import ExportParams
from record_exports.settings import records_database_url
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class JobOutcome:
    success: bool
    run_id: str
    path: str | None = None
    row_count: int | None = None
    error: str | None = None


def check_inputs(params: ExportParams) -> None:
    """What a run would reject, found before a run starts: database and account codes."""
    engine = connect_checked(records_database_url())
    try:
        resolve_account_ids(engine, params.account_codes)
    finally:
        engine.dispose()


def run_config_for(raw: dict[str, Any]) -> dict[str, Any]:
    config = {key: value for key, value in raw.items() if value not in (None, [], "")}
    return {"ops": {"export": {"config": config}}, **QUIET_LOGS}


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            if error is not None:
                return error.message.strip().splitlines()[0]
    return "the run failed; see the run log in the Dagster UI"


def run_export_job(
    params: ExportParams, raw: dict[str, Any], *, output: Path | None, terminal: bool
) -> JobOutcome:
    check_inputs(params)
    overrides: dict[str, Any] = {"progress_reporter": ProgressReporter(terminal=terminal)}
    if output is not None:
        folder = output.resolve().parent
        overrides["export_storage"] = ExportStorage(root=str(folder), on_demand_folder="")
    job = build_definitions(overrides).resolve_job_def("export_records")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config=run_config_for(raw), instance=instance, raise_on_error=False
        )
    if terminal:
        sys.stderr.write("\n")
    if not result.success:
        return JobOutcome(False, result.run_id, error=_failure_message(result))
    return JobOutcome(
        True, result.run_id, path=result.output_for_node("export"), row_count=_row_count(result)
    )


def _row_count(result: dg.ExecuteInProcessResult) -> int | None:
    for event in result.all_events:
        if event.is_successful_output and event.step_output_data is not None:
            entry = event.step_output_data.metadata.get("dagster/row_count")
            if entry is not None:
                return int(entry.value)  # type: ignore[arg-type]
    return None
