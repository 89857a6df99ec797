"""Run-status sensors that write an export request's outcome from outside the run.

The `export` op writes `running`, `succeeded` and `failed` itself, but a run can end
without the op having a say: canceled while queued, its process killed (run monitoring
then fails it), or a crash in the write-back itself. These sensors watch
`export_records` runs that carry the `export_request_id` tag and write the same outcome
again; the guarded UPDATEs of request_store make a second write a no-op and never turn
`succeeded` into `failed`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines import request_store
from pipelines.export_job import export_records, request_id_of, requests_engine
from resources.records_database import RecordsDatabase

INTERVAL_SECONDS = 10


def export_output(instance: dg.DagsterInstance, run_id: str) -> tuple[str, int] | None:
    """(path, row_count) from the `export` step's output metadata of a run."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        data = event.step_output_data if event is not None else None
        if data is None:
            continue
        path, rows = data.metadata.get("path"), data.metadata.get("dagster/row_count")
        if path is not None and rows is not None:
            return str(path.value), int(rows.value)  # type: ignore[arg-type]
    return None


def first_paragraph(text: str) -> str:
    """The lines before the first blank one, joined: an error without its stack trace."""
    lines = []
    for line in text.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def failure_message(context: dg.RunFailureSensorContext) -> str:
    """The first step error when a step failed, else the run's own error (a step whose
    process died on a Celery worker: `WorkerLostError`), else why the run failed."""
    for event in context.get_step_failure_events():
        data: Any = event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None and error.message.strip():
            return str(error.message).strip().splitlines()[0]
    run_error = getattr(context.failure_event.event_specific_data, "error", None)
    if run_error is not None and run_error.message.strip():
        return first_paragraph(run_error.message)
    return context.failure_event.message or "the run failed"


def fail_request_of(run: dg.DagsterRun, records_database: RecordsDatabase, message: str) -> None:
    """Mark the request a run served `failed` (a no-op for runs of no request, or rows
    already finished)."""
    request_id = request_id_of(run)
    if request_id is None:
        return
    with requests_engine(records_database) as engine:
        request_store.mark_failed(engine, request_id, message, run_id=run.run_id)


@dg.run_status_sensor(
    name="export_request_succeeded_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[export_records],
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the export request of a successful export_records run succeeded.",
)
def export_request_succeeded_sensor(
    context: dg.RunStatusSensorContext, records_database: RecordsDatabase
) -> None:
    request_id = request_id_of(context.dagster_run)
    if request_id is None:
        return
    run_id = context.dagster_run.run_id
    output = export_output(context.instance, run_id)
    with requests_engine(records_database) as engine:
        if output is None:
            request_store.mark_failed(
                engine, request_id, "the run succeeded but reported no file", run_id=run_id
            )
            return
        request_store.mark_succeeded(engine, request_id, run_id, *output)


@dg.run_failure_sensor(
    name="export_request_failed_sensor",
    monitored_jobs=[export_records],
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the export request of a failed export_records run failed.",
)
def export_request_failed_sensor(
    context: dg.RunFailureSensorContext, records_database: RecordsDatabase
) -> None:
    fail_request_of(context.dagster_run, records_database, failure_message(context))


@dg.run_status_sensor(
    name="export_request_canceled_sensor",
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[export_records],
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the export request of a canceled export_records run failed.",
)
def export_request_canceled_sensor(
    context: dg.RunStatusSensorContext, records_database: RecordsDatabase
) -> None:
    fail_request_of(context.dagster_run, records_database, "the run was canceled")


request_outcome_sensors = [
    export_request_succeeded_sensor,
    export_request_failed_sensor,
    export_request_canceled_sensor,
]
