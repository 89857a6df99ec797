"""Probe of the Dagster internals pipelines/dagster_events.py uses (DagsterEvent's
step_output_data and step_failure_data, SerializableErrorInfo's message and cause,
DagsterInstance.all_logs, DagsterUserCodeProcessError for a failure without a stack trace):
real runs, so an upgrade that moves one fails here by name."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from pipelines.dagster_events import (
    clean_failure,
    output_metadata,
    step_failure_message,
    step_failures,
)


@dg.op
def reports() -> dg.Output[str]:
    return dg.Output(
        "/exports/x.csv",
        metadata={
            "path": dg.MetadataValue.path("/exports/x.csv"),
            "dagster/row_count": 3,
            "columns": dg.MetadataValue.json(["id", "qty"]),
        },
    )


@dg.op
def refuses() -> None:
    raise dg.Failure(description="Invalid export config: format: unknown value\nmore", metadata={})


@dg.op
def refuses_cleanly() -> None:
    raise clean_failure("Invalid export config: format: unknown value 'xml'; bom: csv only")


@dg.op
def loses_its_connection() -> None:
    try:
        raise ConnectionRefusedError("connection refused\nis the server running?")
    except ConnectionRefusedError as error:
        raise RuntimeError("export failed") from error


def run(op: dg.OpDefinition, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = dg.GraphDefinition(name=f"{op.name}_graph", node_defs=[op]).to_job()
    return job.execute_in_process(instance=instance, raise_on_error=False)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def test_output_metadata_read_from_the_instance(instance: dg.DagsterInstance) -> None:
    result = run(reports, instance)
    assert result.success
    assert output_metadata(instance, result.run_id) == {
        "path": "/exports/x.csv",
        "dagster/row_count": 3,
        "columns": ["id", "qty"],
    }


def test_a_failure_is_its_description(instance: dg.DagsterInstance) -> None:
    result = run(refuses, instance)
    assert step_failure_message(result.get_step_failure_events()) == (
        "Invalid export config: format: unknown value"
    )
    assert output_metadata(instance, result.run_id) == {}


def test_a_clean_failure_is_its_message_alone(instance: dg.DagsterInstance) -> None:
    """No stack trace in the step's failure, nor in the run's (which repeats the first step
    failure), and no retry."""
    result = run(refuses_cleanly, instance)
    expected = "Invalid export config: format: unknown value 'xml'; bom: csv only"
    [failure] = step_failures(instance, result.run_id)
    error = failure.step_failure_data.error
    assert error is not None
    assert (error.message, error.stack, error.cause) == (expected + "\n", [], None)
    assert step_failure_message([failure]) == expected
    [run_failure] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert run_failure.dagster_event is not None
    run_error = run_failure.dagster_event.job_failure_data.error
    assert run_error is not None and (run_error.message, run_error.stack) == (expected + "\n", [])
    kinds = [event.event_type for event in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds


def test_an_error_is_its_root_cause(instance: dg.DagsterInstance) -> None:
    result = run(loses_its_connection, instance)
    assert step_failure_message(result.get_step_failure_events()) == (
        "ConnectionRefusedError: connection refused"
    )


def test_no_failed_step_is_none() -> None:
    assert step_failure_message([]) is None
