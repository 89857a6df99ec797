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
completed tick ended, readably: `tick ended 2026-11-28T10:00:00.123456Z` (UTC). Marking a
row `queued` and Dagster recording the run request are two steps; if the sensor dies between
them, the next tick finds `queued` rows changed after the cursor and requests their runs
again. The run key makes a second request for a row that did get its run a no-op, so a row
never gets two runs.

What a tick did is written where the UI shows it: each rejection as a warning in the tick's
log (`rejected request 42: columns: unknown column(s) 'foo' ...`) and, when the tick requested
no run, in its skip reason too; an idle tick says `no pending requests`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.export_job import accounts_tag, export_records, export_run_tags
from pipelines.request_store import EXPORT_REQUEST_TAG
from record_exports.engine import parse_checked
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams
from resources.records_database import RecordsDatabase

REQUESTS_PER_TICK = 50
INTERVAL_SECONDS = 10
CURSOR_PREFIX = "tick ended "
IDLE = "no pending requests"
REJECTIONS_IN_SKIP_REASON = 3
REQUEST_SOURCE = "request"

JSON_KINDS = {str: "string", list: "array", bool: "boolean", int: "number", float: "number"}


def run_key_for(request_id: int) -> str:
    return f"export-request-{request_id}"


def json_kind(value: Any) -> str:
    return "null" if value is None else JSON_KINDS.get(type(value), type(value).__name__)


def validate_request(engine: Engine, params: Any) -> ExportParams:
    """The export a row asks for, or `ExportInputError` naming every bad field (unknown
    account codes included)."""
    if isinstance(params, request_store.UnreadableParams):
        raise ExportInputError("params", params.reason)
    if not isinstance(params, Mapping):
        raise ExportInputError(
            "params",
            f'must be a JSON object such as {{"format": "csv"}}, got a JSON {json_kind(params)}',
        )
    return parse_checked(engine, params)


def run_request_for(request_id: int, params: ExportParams) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key_for(request_id),
        run_config={"ops": {"export": {"config": params.to_config()}}},
        tags={
            EXPORT_REQUEST_TAG: str(request_id),
            **export_run_tags(params, REQUEST_SOURCE),
        },
    )


def cursor_at(moment: dt.datetime) -> str:
    """`tick ended 2026-11-28T10:00:00.123456Z`: what the UI's cursor column shows."""
    stamp = moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return CURSOR_PREFIX + stamp


def parse_cursor(cursor: str | None) -> dt.datetime | None:
    """The moment of a cursor (also of the bare ISO timestamps earlier versions wrote)."""
    return dt.datetime.fromisoformat(cursor.removeprefix(CURSOR_PREFIX)) if cursor else None


def rejection_text(request_id: int, error: ExportInputError) -> str:
    return f"rejected request {request_id}: {error}"


def skip_reason(rejections: list[str]) -> str:
    """Why a tick requested no run: `no pending requests`, or the rejections (the first few;
    the tick's log has every one)."""
    if not rejections:
        return IDLE
    shown = " | ".join(rejections[:REJECTIONS_IN_SKIP_REASON])
    more = len(rejections) - REJECTIONS_IN_SKIP_REASON
    return shown + (f" | and {more} more rejected (see the tick's log)" if more > 0 else "")


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
) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests of this tick and the texts of the rows it rejected."""
    run_requests = _requeued(context, engine, parse_cursor(context.cursor))
    rejections = []
    for row in request_store.pending_requests(engine, REQUESTS_PER_TICK):
        try:
            params = validate_request(engine, row.params)
        except ExportInputError as error:
            if request_store.reject_request(engine, row.id, str(error)):
                rejections.append(rejection_text(row.id, error))
                context.log.warning(rejections[-1])
            continue
        if request_store.queue_request(engine, row.id):
            run_requests.append(run_request_for(row.id, params))
            context.log.info(
                f"queued request {row.id}: {params.format.value} of "
                f"{accounts_tag(params.account_codes)} accounts"
            )
    return run_requests, rejections


@dg.sensor(
    name="export_requests_sensor",
    job=export_records,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts an export_records run for each pending row of export_requests, or "
    "rejects the row with the reason (in the tick's log, and its skip reason when no run "
    "starts). The cursor is when the last tick ended (UTC).",
)
def export_requests_sensor(
    context: dg.SensorEvaluationContext, records_database: RecordsDatabase
) -> dg.SensorResult:
    with records_database.engine() as engine:
        run_requests, rejections = evaluate(context, engine)
    finished = cursor_at(request_store.utc_now())
    if not run_requests:
        return dg.SensorResult(skip_reason=skip_reason(rejections), cursor=finished)
    return dg.SensorResult(run_requests=run_requests, cursor=finished)
