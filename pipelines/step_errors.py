"""How every export step (the `export` op, the daily asset) turns an error into an outcome.

One rule for all of them: bad input fails the step at once, without retries, with one line
naming every bad field and no stack trace (`dagster_events.clean_failure`); a transient
database error asks Dagster for another attempt after a backoff; anything else fails the step
with its own error. `on_give_up` hears the one-line reason whenever the step gives up for good
(a request run writes it to its request row).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

from pipelines.dagster_events import clean_failure
from pipelines.retries import can_retry, retry_request
from record_exports.errors import ExportInputError, first_line

GiveUpCallback = Callable[[str], None]


def invalid_input_message(error: ExportInputError, what: str = "export config") -> str:
    """`Invalid export config: sale_date_to: ...; account_codes: ...`: every bad field, once,
    on one line (what the run log, the CLI and a request row all show)."""
    return f"Invalid {what}: {error}"


@contextmanager
def export_step_errors(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    *,
    what: str = "export config",
    on_give_up: GiveUpCallback | None = None,
) -> Iterator[None]:
    """Wrap an export step's body: map its errors to `Failure`, `RetryRequested` or re-raise."""
    try:
        yield
    except ExportInputError as error:
        message = invalid_input_message(error, what)
        if on_give_up is not None:
            on_give_up(message)
        raise clean_failure(message) from None
    except BaseException as error:
        if can_retry(error, context.retry_number):
            context.log.warning(f"transient database error, will retry: {first_line(error)}")
            raise retry_request(context.retry_number) from error
        if on_give_up is not None:
            on_give_up(first_line(error))
        raise
