"""The `export_requests` table: what the web app inserts and what Dagster writes back.

Every status change is one guarded UPDATE: the allowed "from" statuses are in the WHERE
clause, so a write-back that arrives twice (the run and a run-status sensor both report
the outcome) changes the row once, and a row never moves backwards (a `succeeded` row
is never marked `failed`). Each function returns whether it changed the row.
All values travel as bound parameters; request text is data, never SQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.schema import export_requests

MAX_ERROR_LENGTH = 2000
EXPORT_REQUEST_TAG = "export_request_id"
"""The tag of a Dagster run that serves a request: the row's id."""

PENDING, QUEUED, RUNNING = "pending", "queued", "running"
SUCCEEDED, FAILED, REJECTED = "succeeded", "failed", "rejected"
IN_FLIGHT = (QUEUED, RUNNING)


@dataclass(frozen=True)
class UnreadableParams:
    """A row's params that are JSON to the database but not to Python: nested deeper than
    Python's JSON decoder goes. The sensor rejects the row, naming `params`."""

    reason: str


def decode_params(text: str | None) -> Any:
    """A row's params, decoded here rather than by the driver: a single row nested a few
    thousand levels deep (valid jsonb) made the driver's decoder raise `RecursionError` while
    fetching every pending row, so every tick failed and no request was served again."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        return UnreadableParams("nested too deeply to read (more than about 900 levels)")


@dataclass(frozen=True)
class ExportRequest:
    id: int
    params: Any
    status: str
    run_id: str | None = None
    output_path: str | None = None
    row_count: int | None = None
    error: str | None = None
    updated_at: dt.datetime | None = None


def utc_now() -> dt.datetime:
    """Write-backs stamp `updated_at` from the clock of the process that acts, the same on
    PostgreSQL and SQLite (whose CURRENT_TIMESTAMP has whole seconds only)."""
    return dt.datetime.now(dt.UTC)


def insert_request(engine: Engine, params: Any, requested_by: str | None) -> int:
    """Insert a `pending` request, as the web app would; returns its id. The request table
    is created when missing, nothing else: no DDL touches the records tables here."""
    export_requests.create(engine, checkfirst=True)
    with engine.begin() as connection:
        request_id = connection.execute(
            export_requests.insert()
            .values(params=params, requested_by=requested_by)
            .returning(export_requests.c.id)
        ).scalar_one()
    return int(request_id)


def _rows(engine: Engine, query: sa.Select[Any]) -> list[ExportRequest]:
    with engine.connect() as connection:
        return [
            ExportRequest(
                id=int(row.id),
                params=decode_params(row.params),
                status=row.status,
                run_id=row.run_id,
                output_path=row.output_path,
                row_count=row.row_count,
                error=row.error,
                updated_at=row.updated_at,
            )
            for row in connection.execute(query)
        ]


def _select() -> sa.Select[Any]:
    c = export_requests.c
    return sa.select(
        c.id,
        sa.cast(c.params, sa.Text).label("params"),
        c.status,
        c.run_id,
        c.output_path,
        c.row_count,
        c.error,
        c.updated_at,
    )


def get_request(engine: Engine, request_id: int) -> ExportRequest | None:
    found = _rows(engine, _select().where(export_requests.c.id == request_id))
    return found[0] if found else None


def pending_requests(engine: Engine, limit: int) -> list[ExportRequest]:
    """The oldest `pending` rows, in id order (served by the `(status, id)` index)."""
    c = export_requests.c
    return _rows(engine, _select().where(c.status == PENDING).order_by(c.id).limit(limit))


def queued_since(engine: Engine, since: dt.datetime | None, limit: int) -> list[ExportRequest]:
    """`queued` rows whose status changed after `since` (all of them when `since` is None)."""
    c = export_requests.c
    query = _select().where(c.status == QUEUED)
    if since is not None:
        query = query.where(c.updated_at > since)
    return _rows(engine, query.order_by(c.id).limit(limit))


def _transition(
    engine: Engine, request_id: int, allowed: Collection[str], values: dict[str, Any]
) -> bool:
    c = export_requests.c
    statement = (
        export_requests.update()
        .where(c.id == request_id, c.status.in_(list(allowed)))
        .values(**values, updated_at=utc_now())
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def _clip(error: str) -> str:
    text = error.strip() or "no reason given"
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def queue_request(engine: Engine, request_id: int) -> bool:
    return _transition(engine, request_id, (PENDING,), {"status": QUEUED})


def reject_request(engine: Engine, request_id: int, error: str) -> bool:
    return _transition(engine, request_id, (PENDING,), {"status": REJECTED, "error": _clip(error)})


def mark_running(engine: Engine, request_id: int, run_id: str) -> bool:
    """`queued` → `running`; also true for a retry of the same run's step."""
    return _transition(engine, request_id, IN_FLIGHT, {"status": RUNNING, "run_id": run_id})


def mark_succeeded(
    engine: Engine, request_id: int, run_id: str, output_path: str, row_count: int
) -> bool:
    return _transition(
        engine,
        request_id,
        IN_FLIGHT,
        {
            "status": SUCCEEDED,
            "run_id": run_id,
            "output_path": output_path,
            "row_count": row_count,
            "error": None,
        },
    )


def mark_failed(engine: Engine, request_id: int, error: str, run_id: str | None = None) -> bool:
    """`queued`/`running` → `failed`; a finished row (succeeded, failed, rejected) stays."""
    values: dict[str, Any] = {"status": FAILED, "error": _clip(error)}
    if run_id is not None:
        values["run_id"] = run_id
    return _transition(engine, request_id, IN_FLIGHT, values)
