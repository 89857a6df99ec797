"""Run-status sensors that write an export request's outcome from outside the run.

The `export` op writes `running`, `succeeded` and `failed` itself, but a run can end
without the op having a say: canceled while queued, its process killed (run monitoring
then fails it), or a crash in the write-back itself. These sensors watch
`export_records` runs that carry the `export_request_id` tag and write the same outcome
again; the guarded UPDATEs of request_store make a second write a no-op and never turn
`succeeded` into `failed`.

Every `export_records` run reaches them, also the ones no request asked for (the CLI's, the
Launchpad's). For those they return a `SkipReason`: when a run-status sensor returns nothing,
Dagster logs "Sensor ... acted on run status ..." into the run's own log, which for a run
that has no request is a misleading line. The cost: Dagster ends a tick at the first run a
sensor returned something for, so such runs are passed one per tick (every
`INTERVAL_SECONDS`) instead of up to five.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipelines import request_store
from pipelines.dagster_events import output_metadata, run_failure_message, step_failure_message
from pipelines.export_job import export_records, request_id_of
from resources.records_database import RecordsDatabase

INTERVAL_SECONDS = 10


def export_output(instance: dg.DagsterInstance, run_id: str) -> tuple[str, int] | None:
    """(path, row_count) from the `export` step's output metadata of a run."""
    metadata = output_metadata(instance, run_id)
    path, rows = metadata.get("path"), metadata.get("dagster/row_count")
    if path is None or rows is None:
        return None
    return str(path), int(rows)


def failure_message(context: dg.RunFailureSensorContext) -> str:
    """Why the first failed step failed, else the run's own error (a step whose process
    died on a Celery worker: `WorkerLostError`), else why the run failed."""
    return (
        step_failure_message(context.get_step_failure_events())
        or run_failure_message(context.failure_event)
        or context.failure_event.message
        or "the run failed"
    )


def no_request(run: dg.DagsterRun) -> dg.SkipReason:
    """What a sensor says for a run no request asked for (and so nothing in its run log)."""
    return dg.SkipReason(f"run {run.run_id} serves no export request; nothing to write")


def fail_request_of(
    run: dg.DagsterRun, records_database: RecordsDatabase, message: str
) -> dg.SkipReason | None:
    """Mark the request a run served `failed` (a no-op for rows already finished)."""
    request_id = request_id_of(run)
    if request_id is None:
        return no_request(run)
    with records_database.engine() as engine:
        request_store.mark_failed(engine, request_id, message, run_id=run.run_id)
    return None


OUTCOME_SENSOR_OPTIONS: dict[str, Any] = {
    "monitored_jobs": [export_records],
    "minimum_interval_seconds": INTERVAL_SECONDS,
    "default_status": dg.DefaultSensorStatus.RUNNING,
}
"""What every request-outcome sensor shares: the job it watches, how often, and on by default."""


@dg.run_status_sensor(
    name="export_request_succeeded_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    **OUTCOME_SENSOR_OPTIONS,
    description="Marks the export request of a successful export_records run succeeded.",
)
def export_request_succeeded_sensor(
    context: dg.RunStatusSensorContext, records_database: RecordsDatabase
) -> dg.SkipReason | None:
    request_id = request_id_of(context.dagster_run)
    if request_id is None:
        return no_request(context.dagster_run)
    run_id = context.dagster_run.run_id
    output = export_output(context.instance, run_id)
    with records_database.engine() as engine:
        if output is None:
            request_store.mark_failed(
                engine, request_id, "the run succeeded but reported no file", run_id=run_id
            )
        else:
            request_store.mark_succeeded(engine, request_id, run_id, *output)
    return None


@dg.run_failure_sensor(
    name="export_request_failed_sensor",
    **OUTCOME_SENSOR_OPTIONS,
    description="Marks the export request of a failed export_records run failed.",
)
def export_request_failed_sensor(
    context: dg.RunFailureSensorContext, records_database: RecordsDatabase
) -> dg.SkipReason | None:
    if request_id_of(context.dagster_run) is None:
        return no_request(context.dagster_run)  # before reading the run's events for a message
    return fail_request_of(context.dagster_run, records_database, failure_message(context))


@dg.run_status_sensor(
    name="export_request_canceled_sensor",
    run_status=dg.DagsterRunStatus.CANCELED,
    **OUTCOME_SENSOR_OPTIONS,
    description="Marks the export request of a canceled export_records run failed.",
)
def export_request_canceled_sensor(
    context: dg.RunStatusSensorContext, records_database: RecordsDatabase
) -> dg.SkipReason | None:
    return fail_request_of(context.dagster_run, records_database, "the run was canceled")


request_outcome_sensors = [
    export_request_succeeded_sensor,
    export_request_failed_sensor,
    export_request_canceled_sensor,
]
