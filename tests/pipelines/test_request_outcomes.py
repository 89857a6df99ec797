"""A request's outcome written back by its run and by the run-status sensors: success,
failure inside the op, a crashed run, a canceled run; each write idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.dagster_events import first_paragraph
from pipelines.sensors.export_requests import run_request_for, validate_request
from record_exports.schema import accounts, export_requests
from tests.dagster_support import Setup
from tests.factories import libpq_url
from tests.postgres import client_sessions


def queued_request(setup: Setup, params: dict[str, Any]) -> tuple[int, dg.RunRequest]:
    request_id = request_store.insert_request(setup.engine, params, "tests")
    assert request_store.queue_request(setup.engine, request_id)
    return request_id, run_request_for(request_id, validate_request(setup.engine, params))


def launch(setup: Setup, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = setup.defs.resolve_job_def("export_records")
    return job.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=setup.instance,
        raise_on_error=False,
    )


def status_event(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> Any:
    [entry] = instance.all_logs(run_id, of_type=kind)
    return entry.dagster_event


def run_sensor(
    setup: Setup, name: str, run_id: str, kind: dg.DagsterEventType, failure: bool = False
) -> None:
    run = setup.instance.get_run_by_id(run_id)
    assert run is not None
    sensor = setup.defs.resolve_sensor_def(name)
    with dg.build_run_status_sensor_context(
        sensor_name=name,
        dagster_event=status_event(setup.instance, run_id, kind),
        dagster_instance=setup.instance,
        dagster_run=run,
        resources=setup.resources,
    ) as context:
        sensor(context.for_run_failure() if failure else context)


def set_status(engine: Engine, request_id: int, status: str) -> None:
    """Put a row back in flight, as if the run's own write-back had been lost."""
    with engine.begin() as connection:
        connection.execute(
            sa.update(export_requests)
            .where(export_requests.c.id == request_id)
            .values(status=status, output_path=None, row_count=None, error=None)
        )


def get(engine: Engine, request_id: int) -> request_store.ExportRequest:
    found = request_store.get_request(engine, request_id)
    assert found is not None
    return found


def test_successful_run_writes_back_and_the_sensor_agrees(dagster_setup: Setup) -> None:
    request_id, request = queued_request(
        dagster_setup, {"format": "csv", "account_codes": ["ACC2"]}
    )
    result = launch(dagster_setup, request)
    assert result.success

    done = get(dagster_setup.engine, request_id)
    assert (done.status, done.run_id, done.error) == ("succeeded", result.run_id, None)
    assert done.output_path is not None
    output = Path(done.output_path)
    assert output.parent == dagster_setup.exports / "requests" / str(request_id)
    assert pl.read_csv(output).height == done.row_count and done.row_count

    set_status(dagster_setup.engine, request_id, "running")
    run_sensor(
        dagster_setup,
        "export_request_succeeded_sensor",
        result.run_id,
        dg.DagsterEventType.RUN_SUCCESS,
    )
    again = get(dagster_setup.engine, request_id)
    assert (again.status, again.output_path, again.row_count) == (
        "succeeded",
        done.output_path,
        done.row_count,
    )
    stamp = again.updated_at
    run_sensor(
        dagster_setup,
        "export_request_succeeded_sensor",
        result.run_id,
        dg.DagsterEventType.RUN_SUCCESS,
    )
    run_sensor(
        dagster_setup,
        "export_request_failed_sensor",
        result.run_id,
        dg.DagsterEventType.RUN_SUCCESS,
        failure=True,
    )
    unchanged = get(dagster_setup.engine, request_id)
    assert (unchanged.status, unchanged.updated_at) == ("succeeded", stamp)


def test_failing_op_marks_the_row_failed_and_the_sensor_keeps_it(dagster_setup: Setup) -> None:
    request_id, request = queued_request(dagster_setup, {"account_codes": ["ACC1"]})
    with dagster_setup.engine.begin() as connection:  # the account is renamed after queuing
        connection.execute(
            sa.update(accounts).where(accounts.c.account_code == "ACC1").values(account_code="ACCX")
        )
    result = launch(dagster_setup, request)
    assert not result.success

    failed = get(dagster_setup.engine, request_id)
    assert failed.status == "failed" and failed.run_id == result.run_id
    assert failed.error is not None and "unknown account code(s): ACC1" in failed.error

    set_status(dagster_setup.engine, request_id, "running")
    run_sensor(
        dagster_setup,
        "export_request_failed_sensor",
        result.run_id,
        dg.DagsterEventType.RUN_FAILURE,
        failure=True,
    )
    again = get(dagster_setup.engine, request_id)
    assert again.status == "failed"
    assert again.error is not None and "unknown account code(s): ACC1" in again.error
    assert not (dagster_setup.exports / "requests" / str(request_id)).exists() or not any(
        (dagster_setup.exports / "requests" / str(request_id)).iterdir()
    )


def test_crashed_run_leaves_the_row_failed(dagster_setup: Setup) -> None:
    """The run's process died: run monitoring reports the failure, the sensor writes it."""
    request_id, request = queued_request(dagster_setup, {"format": "csv"})
    job = dagster_setup.defs.resolve_job_def("export_records")
    run = dagster_setup.instance.create_run_for_job(
        job, run_config=request.run_config, tags=request.tags, status=dg.DagsterRunStatus.STARTED
    )
    assert request_store.mark_running(dagster_setup.engine, request_id, run.run_id)
    dagster_setup.instance.report_run_failed(run, message="Run worker process exited (killed)")

    run_sensor(
        dagster_setup,
        "export_request_failed_sensor",
        run.run_id,
        dg.DagsterEventType.RUN_FAILURE,
        failure=True,
    )

    failed = get(dagster_setup.engine, request_id)
    assert (failed.status, failed.run_id) == ("failed", run.run_id)
    assert failed.error is not None and "killed" in failed.error


def test_canceled_run_leaves_the_row_failed(dagster_setup: Setup) -> None:
    """Canceled before it started: the op never ran, the sensor alone writes it."""
    request_id, request = queued_request(dagster_setup, {"format": "csv"})
    job = dagster_setup.defs.resolve_job_def("export_records")
    run = dagster_setup.instance.create_run_for_job(
        job,
        run_config=request.run_config,
        tags=request.tags,
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    dagster_setup.instance.report_run_canceled(run)

    run_sensor(
        dagster_setup,
        "export_request_canceled_sensor",
        run.run_id,
        dg.DagsterEventType.RUN_CANCELED,
    )

    canceled = get(dagster_setup.engine, request_id)
    assert (canceled.status, canceled.run_id, canceled.error) == (
        "failed",
        run.run_id,
        "the run was canceled",
    )


def evaluate(setup: Setup, name: str, cursor: str | None) -> Any:
    """One tick of a run-status sensor through Dagster's own evaluation, as the daemon runs
    it: the daemon writes "Sensor ... acted on run status ..." into the log of every run in
    the result's `dagster_run_reactions`."""
    sensor = setup.defs.resolve_sensor_def(name)
    with dg.build_sensor_context(
        instance=setup.instance, cursor=cursor, definitions=setup.defs, resources=setup.resources
    ) as context:
        return sensor.evaluate_tick(context)


def test_a_run_without_a_request_gets_no_line_in_its_log(dagster_setup: Setup) -> None:
    job = dagster_setup.defs.resolve_job_def("export_records")
    name = "export_request_failed_sensor"
    cursor = evaluate(dagster_setup, name, None).cursor  # the first tick only sets the cursor
    bad_config = {"ops": {"export": {"config": {"account_codes": ["NOPE"]}}}}
    plain = job.execute_in_process(
        run_config=bad_config, instance=dagster_setup.instance, raise_on_error=False
    )
    assert not plain.success

    tick = evaluate(dagster_setup, name, cursor)

    assert tick.dagster_run_reactions == []
    assert tick.skip_message == f"run {plain.run_id} serves no export request; nothing to write"

    request_id, request = queued_request(dagster_setup, {"account_codes": ["ACC1"]})
    with dagster_setup.engine.begin() as connection:
        connection.execute(
            sa.update(accounts).where(accounts.c.account_code == "ACC1").values(account_code="ACCX")
        )
    served = launch(dagster_setup, request)
    assert not served.success
    tick = evaluate(dagster_setup, name, tick.cursor)
    assert [reaction.dagster_run.run_id for reaction in tick.dagster_run_reactions] == [
        served.run_id
    ]
    assert get(dagster_setup.engine, request_id).status == "failed"


def test_runs_without_a_request_tag_are_ignored(dagster_setup: Setup) -> None:
    request_id = request_store.insert_request(dagster_setup.engine, {"format": "csv"}, None)
    job = dagster_setup.defs.resolve_job_def("export_records")
    result = job.execute_in_process(instance=dagster_setup.instance)
    assert result.success
    run_sensor(
        dagster_setup,
        "export_request_succeeded_sensor",
        result.run_id,
        dg.DagsterEventType.RUN_SUCCESS,
    )
    assert get(dagster_setup.engine, request_id).status == "pending"


def test_write_backs_never_move_a_row_backwards(dagster_setup: Setup) -> None:
    engine = dagster_setup.engine
    request_id = request_store.insert_request(engine, {"format": "csv"}, None)
    assert not request_store.mark_running(engine, request_id, "r1")  # still pending
    assert request_store.queue_request(engine, request_id)
    assert not request_store.queue_request(engine, request_id)
    assert request_store.mark_running(engine, request_id, "r1")
    assert request_store.mark_running(engine, request_id, "r1")  # a retried step
    assert request_store.mark_succeeded(engine, request_id, "r1", "/x.csv", 3)
    assert not request_store.mark_failed(engine, request_id, "late failure", run_id="r1")
    assert not request_store.mark_running(engine, request_id, "r2")
    assert not request_store.reject_request(engine, request_id, "no")
    assert get(engine, request_id).status == "succeeded"


def test_a_request_run_opens_one_engine_and_closes_it(dagster_setup: Setup) -> None:
    """Status write-backs and the account lookup share the resource's engine, which the
    resource's teardown disposes: one pool connects to the records database, none is left."""
    request_id, request = queued_request(dagster_setup, {"account_codes": ["ACC1", "ACC3"]})
    dagster_setup.engine.dispose()
    database = dagster_setup.engine.url.database
    pools: list[object] = []

    def first_connect(dbapi_connection: Any, _record: Any) -> None:
        if getattr(getattr(dbapi_connection, "info", None), "dbname", None) == database:
            pools.append(dbapi_connection)

    sa.event.listen(sa.pool.Pool, "first_connect", first_connect)
    try:
        result = launch(dagster_setup, request)
    finally:
        sa.event.remove(sa.pool.Pool, "first_connect", first_connect)
    assert result.success
    assert get(dagster_setup.engine, request_id).status == "succeeded"
    assert len(pools) == 1
    dagster_setup.engine.dispose()
    assert client_sessions(libpq_url(dagster_setup.url)) == 0


def test_a_run_error_is_reported_without_its_stack_trace() -> None:
    """How a Celery step whose process died reaches the request row (the run's own error)."""
    error = (
        "During celery execution errors occurred in workers:\n"
        "[export]: billiard.exceptions.WorkerLostError: Worker exited prematurely: signal 9\n"
        "\nStack Trace:\n  File ..."
    )
    assert first_paragraph(error) == (
        "During celery execution errors occurred in workers: [export]: "
        "billiard.exceptions.WorkerLostError: Worker exited prematurely: signal 9"
    )
