"""`export_requests_sensor` ticks against a real PostgreSQL request table and instance."""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.sensors import export_requests
from record_exports.schema import export_requests as requests_table
from tests.dagster_support import Setup
from tests.factories import count_rows


class TickLog(logging.Handler):
    """What a tick writes to its log (the daemon keeps it for the UI's "View logs")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Dagster's instigation logger prefixes "<repository> - <sensor> - " when it knows them.
        self.lines.append((record.levelno, record.getMessage()))


def tick(setup: Setup, cursor: str | None = None, log: TickLog | None = None) -> dg.SensorResult:
    sensor = setup.defs.resolve_sensor_def("export_requests_sensor")
    with dg.build_sensor_context(
        instance=setup.instance, cursor=cursor, definitions=setup.defs, resources=setup.resources
    ) as context:
        if log is not None:
            context.log.addHandler(log)
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def skip_text(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message or "" if result.skip_reason else ""


def insert(engine: Engine, params: Any) -> int:
    return request_store.insert_request(engine, params, "tests")


def row(engine: Engine, request_id: int) -> request_store.ExportRequest:
    found = request_store.get_request(engine, request_id)
    assert found is not None
    return found


BAD_ROWS: list[tuple[Any, str]] = [
    ("xlsx", "params: must be a JSON object"),
    (["csv"], "got a JSON array"),
    (42, "got a JSON number"),
    (None, "got a JSON null"),
    ({"format": 3}, "format: must be one of"),
    ({"format": "docx"}, "format: unknown value 'docx'"),
    ({"include_remarks": "yes"}, "include_remarks: must be true or false"),
    ({"formats": ["csv"]}, "unknown field(s) 'formats'"),
    ({"columns": ["id", "password"]}, "columns: unknown column(s) 'password'"),
    ({"columns": ["order_remark"]}, "need include_remarks=true"),
    ({"account_codes": ["ACC1"] * 5000}, "account_codes: has 5000 items, at most 1000"),
    ({"account_codes": "ACC1"}, "must be a list of strings"),
    ({"account_codes": ["NOSUCH"]}, "unknown account code(s): NOSUCH"),
    ({"account_codes": ["ACC1'; DROP TABLE accounts; --"]}, "account_codes: malformed code(s)"),
    ({"statuses": ["SUCCESSFUL' OR '1'='1"]}, "statuses: unknown status(es)"),
    ({"output_name": "x'); DELETE FROM export_requests; --"}, "output_name:"),
    ({"output_name": "../../etc/passwd"}, "output_name:"),
    ({"sale_date_from": "2026-02-30"}, "sale_date_from: '2026-02-30' is not a real date"),
    ({"format": "xlsx", "compression": "gzip"}, "compression: applies to csv"),
]


def test_valid_rows_queue_runs_bad_rows_are_rejected_with_reasons(dagster_setup: Setup) -> None:
    engine = dagster_setup.engine
    good_first = insert(engine, {"format": "XLSX", "account_codes": ["ACC1"]})
    bad_ids = [insert(engine, params) for params, _ in BAD_ROWS]
    good_last = insert(engine, {"format": "csv", "statuses": ["successful"], "columns": ["id"]})
    records_before, accounts_before = (
        count_rows(engine, "bookkeeping_records"),
        count_rows(engine, "accounts"),
    )

    result = tick(dagster_setup)

    assert [r.run_key for r in result.run_requests or []] == [
        f"export-request-{good_first}",
        f"export-request-{good_last}",
    ]
    first, last = result.run_requests or []
    assert first.tags == {
        "export_request_id": str(good_first),
        "source": "request",
        "format": "xlsx",
        "accounts": "ACC1",
    }
    assert last.tags["accounts"] == "all"
    assert first.run_config["ops"]["export"]["config"]["format"] == "xlsx"
    assert first.run_config["ops"]["export"]["config"]["columns"] == []
    assert last.run_config["ops"]["export"]["config"]["statuses"] == ["SUCCESSFUL"]
    assert last.run_config["ops"]["export"]["config"]["columns"] == ["id"]
    assert row(engine, good_first).status == "queued"
    assert row(engine, good_last).status == "queued"
    for request_id, (_, reason) in zip(bad_ids, BAD_ROWS, strict=True):
        rejected = row(engine, request_id)
        assert rejected.status == "rejected", rejected
        assert rejected.error is not None and reason in rejected.error, (reason, rejected.error)
        assert rejected.run_id is None
    # Nothing else changed: the records, the accounts, and every request row is accounted for.
    assert count_rows(engine, "bookkeeping_records") == records_before
    assert count_rows(engine, "accounts") == accounts_before
    assert count_rows(engine, "export_requests") == len(BAD_ROWS) + 2
    assert result.cursor is not None


def test_queued_configs_are_valid_run_configs(dagster_setup: Setup) -> None:
    insert(dagster_setup.engine, {"format": "Parquet", "money": "DOLLARS", "account_codes": None})
    [request] = tick(dagster_setup).run_requests or []
    job = dagster_setup.defs.resolve_job_def("export_records")
    assert dg.validate_run_config(job, request.run_config)


def test_repeated_ticks_request_nothing_twice(dagster_setup: Setup) -> None:
    ids = [insert(dagster_setup.engine, {"format": "csv"}) for _ in range(3)]
    first = tick(dagster_setup)
    assert len(first.run_requests or []) == 3
    second = tick(dagster_setup, first.cursor)
    assert not second.run_requests
    assert second.cursor is not None and second.cursor >= (first.cursor or "")
    later = insert(dagster_setup.engine, {"format": "json"})
    third = tick(dagster_setup, second.cursor)
    assert [r.run_key for r in third.run_requests or []] == [f"export-request-{later}"]
    assert {row(dagster_setup.engine, i).status for i in ids} == {"queued"}


def test_bounded_batch_per_tick(dagster_setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_requests, "REQUESTS_PER_TICK", 4)
    ids = [insert(dagster_setup.engine, {"format": "csv"}) for _ in range(6)]
    first = tick(dagster_setup)
    assert [r.tags["export_request_id"] for r in first.run_requests or []] == [
        str(i) for i in ids[:4]
    ]
    second = tick(dagster_setup, first.cursor)
    assert [r.tags["export_request_id"] for r in second.run_requests or []] == [
        str(i) for i in ids[4:]
    ]


def test_a_row_queued_by_a_crashed_tick_is_requested_again_with_the_same_key(
    dagster_setup: Setup,
) -> None:
    """The tick that queued it died before Dagster recorded its run request: the cursor
    never moved past it, so the next tick requests it again (the run key dedupes)."""
    done = tick(dagster_setup)
    request_id = insert(dagster_setup.engine, {"format": "csv"})
    assert request_store.queue_request(dagster_setup.engine, request_id)

    again = tick(dagster_setup, done.cursor)

    assert [r.run_key for r in again.run_requests or []] == [f"export-request-{request_id}"]
    assert not tick(dagster_setup, again.cursor).run_requests


def test_row_inserted_late_with_a_lower_id_is_not_skipped(dagster_setup: Setup) -> None:
    """Ids are taken at insert and commit in any order; pending rows are found by status."""
    engine = dagster_setup.engine
    low = insert(engine, {"format": "csv"})
    high = insert(engine, {"format": "csv"})
    with engine.begin() as connection:  # the lower id "commits" after the first tick
        connection.execute(
            sa.update(requests_table).where(requests_table.c.id == low).values(status="running")
        )
    first = tick(dagster_setup)
    assert [r.run_key for r in first.run_requests or []] == [f"export-request-{high}"]
    with engine.begin() as connection:
        connection.execute(
            sa.update(requests_table).where(requests_table.c.id == low).values(status="pending")
        )
    second = tick(dagster_setup, first.cursor)
    assert [r.run_key for r in second.run_requests or []] == [f"export-request-{low}"]


def test_ticks_say_what_they_did(dagster_setup: Setup) -> None:
    """An idle tick says so; a tick that rejected rows says which and why in its skip reason
    and its log, visible without hovering; the cursor reads as a time."""
    idle = tick(dagster_setup)
    assert skip_text(idle) == "no pending requests"
    assert idle.cursor is not None and idle.cursor.startswith("tick ended 20")
    assert idle.cursor.endswith("Z") and export_requests.parse_cursor(idle.cursor) is not None

    bad = insert(dagster_setup.engine, {"columns": ["id", "foo"]})
    worse = insert(dagster_setup.engine, {"format": "docx", "sale_date_to": "2026-02-30"})
    log = TickLog()
    rejecting = tick(dagster_setup, idle.cursor, log)
    assert not rejecting.run_requests
    first = f"rejected request {bad}: columns: unknown column(s) 'foo' (valid names: id,"
    second = (
        f"rejected request {worse}: format: unknown value 'docx' (valid: csv, ndjson, json, "
        "xlsx, parquet); sale_date_to: '2026-02-30' is not a real date"
    )
    reason = skip_text(rejecting)
    assert reason.startswith(first) and reason.endswith(" | " + second)
    warnings = [line for level, line in log.lines if level == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith(first) and warnings[1] == second

    good = insert(dagster_setup.engine, {"format": "csv", "account_codes": ["ACC1"]})
    also_bad = insert(dagster_setup.engine, {"statuses": ["SHIPPED"]})
    log = TickLog()
    mixed = tick(dagster_setup, rejecting.cursor, log)
    assert [r.run_key for r in mixed.run_requests or []] == [f"export-request-{good}"]
    lines = [line for _, line in log.lines]
    assert f"queued request {good}: csv of ACC1 accounts" in lines
    assert [line for line in lines if line.startswith(f"rejected request {also_bad}: statuses:")]


def test_a_long_list_of_rejections_is_cut_in_the_skip_reason(dagster_setup: Setup) -> None:
    ids = [insert(dagster_setup.engine, {"format": "pdf"}) for _ in range(5)]
    reason = skip_text(tick(dagster_setup))
    assert reason.count("rejected request") == export_requests.REJECTIONS_IN_SKIP_REASON
    assert reason.endswith(" | and 2 more rejected (see the tick's log)")
    assert f"rejected request {ids[0]}: format:" in reason


def test_cursors_written_before_they_were_readable_still_work() -> None:
    moment = export_requests.parse_cursor("2026-11-28T10:00:00.123456+00:00")
    assert moment is not None
    assert export_requests.cursor_at(moment) == "tick ended 2026-11-28T10:00:00.123456Z"
    assert export_requests.parse_cursor(export_requests.cursor_at(moment)) == moment
