"""Running `export_records` from the command line: checks first, then a recorded Dagster run."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.dagster_events import output_metadata, step_failure_message
from pipelines.definitions import build_definitions
from record_exports.database import connect_checked, require_records_schema
from record_exports.engine import resolve_account_ids
from record_exports.params import ExportParams
from record_exports.settings import RECORDS_DATABASE_URL
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter

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


def run_config_for(params: ExportParams) -> dict[str, Any]:
    """Validated params in the run config's canonical form (`CSV` typed on the command line
    is `csv` here), so Dagster's config check never sees a value the parser accepted."""
    return {"ops": {"export": {"config": params.to_config()}}, **QUIET_LOGS}


def run_export_job(params: ExportParams, *, output: Path | None, terminal: bool) -> JobOutcome:
    check_inputs(params)
    overrides: dict[str, Any] = {"progress_reporter": ProgressReporter(terminal=terminal)}
    if output is not None:
        folder = output.resolve().parent
        overrides["export_storage"] = ExportStorage(root=str(folder), on_demand_folder="")
    job = build_definitions(overrides).resolve_job_def("export_records")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config=run_config_for(params), instance=instance, raise_on_error=False
        )
        metadata = output_metadata(instance, result.run_id) if result.success else {}
    if terminal:
        sys.stderr.write("\n")
    if not result.success:
        error = step_failure_message(result.get_step_failure_events())
        return JobOutcome(
            False,
            result.run_id,
            error=error or f"run {result.run_id} failed; see its log in the Dagster UI",
        )
    return JobOutcome(
        True,
        result.run_id,
        path=str(result.output_for_node("export")),
        row_count=int(metadata.get("dagster/row_count", 0)),
        truncated_cells=int(metadata.get("truncated_cells", 0)),
    )
