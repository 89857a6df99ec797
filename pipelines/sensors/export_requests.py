"""`export_requests_sensor`: turns `pending` rows of `export_requests` into runs.

Each tick takes the oldest `pending` rows (at most `REQUESTS_PER_TICK`, in id order,
through the `(status, id)` index) and for each one either

- rejects it: params that are not a JSON object, fail `parse_export_params`, or name
  unknown accounts make the row `rejected` with an `error` that names the field, and
  nothing else changes; the tick goes on with the next row; or
- queues it: the row becomes `queued` and the tick requests one `export_records` run
  with `run_key = "export-request-<id>"` and tag `export_request_id=<id>`.

Rows are selected by status rather than by "id above the cursor", so a row whose insert
committed after a row with a higher id is not skipped. The cursor records when the last
completed tick ended. Marking a row `queued` and Dagster recording the run request are
two steps; if the sensor dies between them, the next tick finds `queued` rows changed
after the cursor and requests their runs again. The run key makes a second request for
a row that did get its run a no-op, so a row never gets two runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.export_job import EXPORT_REQUEST_TAG, export_records
from record_exports.engine import resolve_account_ids
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams, parse_export_params
from resources.records_database import RecordsDatabase

REQUESTS_PER_TICK = 50
INTERVAL_SECONDS = 10

JSON_KINDS = {str: "string", list: "array", bool: "boolean", int: "number", float: "number"}


def run_key_for(request_id: int) -> str:
    return f"export-request-{request_id}"


def json_kind(value: Any) -> str:
    return "null" if value is None else JSON_KINDS.get(type(value), type(value).__name__)


def validate_request(engine: Engine, params: Any) -> ExportParams:
    """The export a row asks for, or `ExportInputError` saying what is wrong with it."""
    if not isinstance(params, Mapping):
        raise ExportInputError(
            "params",
            f'must be a JSON object such as {{"format": "csv"}}, got a JSON {json_kind(params)}',
        )
    parsed = parse_export_params(params)
    resolve_account_ids(engine, parsed.account_codes)
    return parsed


def run_request_for(request_id: int, params: ExportParams) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key_for(request_id),
        run_config={"ops": {"export": {"config": params.to_config()}}},
        tags={EXPORT_REQUEST_TAG: str(request_id)},
    )


def parse_cursor(cursor: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(cursor) if cursor else None


def _requeued(
    context: dg.SensorEvaluationContext, engine: Engine, since: dt.datetime | None
) -> list[dg.RunRequest]:
    """Runs for rows a crashed tick queued; rows whose params no longer validate fail."""
    requests = []
    for row in request_store.queued_since(engine, since, REQUESTS_PER_TICK):
        try:
            requests.append(run_request_for(row.id, validate_request(engine, row.params)))
        except ExportInputError as error:
            context.log.warning(f"queued request {row.id} no longer valid: {error}")
            request_store.mark_failed(engine, row.id, str(error))
    return requests


def evaluate(
    context: dg.SensorEvaluationContext, engine: Engine
) -> tuple[list[dg.RunRequest], int]:
    """Run requests of this tick and the number of rows rejected."""
    run_requests = _requeued(context, engine, parse_cursor(context.cursor))
    rejected = 0
    for row in request_store.pending_requests(engine, REQUESTS_PER_TICK):
        try:
            params = validate_request(engine, row.params)
        except ExportInputError as error:
            if request_store.reject_request(engine, row.id, str(error)):
                rejected += 1
                context.log.info(f"request {row.id} rejected: {error}")
            continue
        if request_store.queue_request(engine, row.id):
            run_requests.append(run_request_for(row.id, params))
    return run_requests, rejected


@dg.sensor(
    name="export_requests_sensor",
    job=export_records,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts an export_records run for each pending export request.",
)
def export_requests_sensor(
    context: dg.SensorEvaluationContext, records_database: RecordsDatabase
) -> dg.SensorResult:
    with records_database.engine() as engine:
        run_requests, rejected = evaluate(context, engine)
    finished = request_store.utc_now().isoformat()
    if not run_requests:
        skip = f"no pending requests ({rejected} rejected)" if rejected else "no pending requests"
        return dg.SensorResult(skip_reason=skip, cursor=finished)
    return dg.SensorResult(run_requests=run_requests, cursor=finished)
