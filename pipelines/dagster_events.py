"""Dagster's step events, where no public API reaches them, in one place.

What the CLI and the request sensors read: a step's output metadata as seen from outside
the run, and why a step failed (a `Failure`'s description, or the error). They are read here
through `DagsterEvent.step_output_data`, `DagsterEvent.step_failure_data` (its
`user_failure_data` and its `error`, a `SerializableErrorInfo` with `.message` and `.cause`)
and `EventLogEntry.dagster_event` of `DagsterInstance.all_logs`; and a run failure's own
error through `DagsterEvent.event_specific_data.error` (a run whose step process died on a
Celery worker has no step failure, only this).

What a step raises for bad input (`clean_failure`): `dagster._core.errors.
DagsterUserCodeProcessError`, which carries a ready-made `SerializableErrorInfo`.
tests/pipelines/test_dagster_events.py probes each of them against real runs, so a Dagster
upgrade that changes one fails there, by name. An interrupted step's error class name
(`SerializableErrorInfo.cls_name`, `DagsterExecutionInterruptedError`) is probed by the
interrupt tests of tests/pipelines/test_pool_slots.py, which signal real CLI exports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterUserCodeProcessError
from dagster._utils.error import SerializableErrorInfo

from record_exports.errors import first_line


def output_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any]:
    """The metadata values of the run's first step output that carried any."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        if event is None:
            continue
        metadata = event.step_output_data.metadata
        if metadata:
            return {key: value.value for key, value in metadata.items()}
    return {}


def step_failures(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    """The run's step failure events, in order."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    return [entry.dagster_event for entry in entries if entry.dagster_event is not None]


def step_failure_message(failures: Iterable[dg.DagsterEvent]) -> str | None:
    """Why the first failed step failed, in one line: the description of a `Failure` it
    raised, else the first line of the innermost error (the root cause), else None."""
    for event in failures:
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return first_line(data.user_failure_data.description)
        error = data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None and error.message.strip():
            return first_line(error.message)
    return None


def step_was_interrupted(failures: Iterable[dg.DagsterEvent]) -> bool:
    """A step failed because its process was told to stop (Ctrl-C, SIGTERM): Dagster raises
    `DagsterExecutionInterruptedError` in the step's code, and names that class in the
    failure's `error.cls_name`."""
    return any(
        event.step_failure_data.error is not None
        and event.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
        for event in failures
    )


def first_paragraph(text: str) -> str:
    """The lines before the first blank one, joined: an error without its stack trace."""
    lines = []
    for line in text.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def run_failure_message(failure: dg.DagsterEvent) -> str | None:
    """The run's own error (e.g. `WorkerLostError` from a Celery worker), without its stack
    trace, or None when the run failure carries none."""
    error: Any = getattr(failure.event_specific_data, "error", None)
    if error is None or not str(error.message).strip():
        return None
    return first_paragraph(str(error.message))


def clean_failure(message: str) -> Exception:
    """The error a step raises to fail with `message` alone: no stack trace in the run log,
    the UI or the run's failure event.

    A raised `dagster.Failure` shows its description followed by the Python stack of
    Dagster's frames and ours, which for a person's bad input is noise. Dagster turns a
    `DagsterUserCodeProcessError` holding exactly one `SerializableErrorInfo` into that
    info itself (it is how errors from a step's subprocess travel), so one with an empty
    stack reads as the message and nothing else. Bad input never retries: the step has no
    retry policy, and only `RetryRequested` asks for another attempt.
    """
    info = SerializableErrorInfo(message=message.rstrip() + "\n", stack=[], cls_name=None)
    return DagsterUserCodeProcessError(message, user_code_process_error_infos=[info])
