"""Request load (`python -m bench --only-requests`): 300 pending requests, 20 of them malformed,
settled by `export_requests_sensor` ticks and the runs they request.

A fresh PostgreSQL database (`<BENCH_DATABASE_URL>_request_load`, made anew each time and
dropped at the end) gets `RECORDS` seeded records and the 300 rows, filed at once as the web
app would.
Then, until no row is pending or queued: one tick of the sensor (as the daemon evaluates it),
then each run it requested, executed in this process on a real (temporary, SQLite-backed)
Dagster instance, with the request's run key and tags. Runs the daemon launches would each
pay a process start (about 3 s, see the README) on top.

It checks what the issue asks: exactly one run per valid request (the instance's runs by
`export_request_id` tag), every valid row `succeeded` with its file, the 20 malformed rows
`rejected` with a reason, no run for them; then prints the wall time and requests/s.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import sqlalchemy as sa
from psycopg import sql

from bench.database import base_target
from pipelines.definitions import build_definitions
from pipelines.export_job import EXPORT_JOB
from pipelines.request_store import EXPORT_REQUEST_TAG, insert_request
from record_exports.database import DatabaseTarget, create_engine_for
from record_exports.schema import create_schema, export_requests
from record_exports.seed import seed_records
from resources.export_storage import ExportStorage
from resources.records_database import RecordsDatabase

REQUESTS = 300
MALFORMED = 20
RECORDS = 20_000
ACCOUNTS = 10
SENSOR = "export_requests_sensor"

MALFORMED_PARAMS: list[Any] = [
    "csv",
    ["csv"],
    42,
    None,
    {"format": "docx"},
    {"format": 3},
    {"formats": ["csv"]},
    {"columns": ["id", "password"]},
    {"columns": ["order_remark"]},
    {"account_codes": ["NOSUCH"]},
    {"account_codes": ["ACC1'; DROP TABLE accounts; --"]},
    {"statuses": ["SUCCESSFUL' OR '1'='1"]},
    {"sale_date_from": "2026-02-30"},
    {"sale_date_from": "2026-03-01", "sale_date_to": "2026-01-01"},
    {"output_name": "../../etc/passwd"},
    {"output_name": "x.csv.manifest.json", "format": "json"},
    {"format": "xlsx", "compression": "gzip"},
    {"include_remarks": "yes"},
    {"account_codes": ["ACC1"] * 5000},
    {"bom": "x" * 100_000},
]
"""One of each kind of garbage; row 21 on would repeat them."""


def valid_params(number: int) -> dict[str, Any]:
    """Small selections in every format, as a web app asks for them."""
    formats = ["csv", "xlsx", "ndjson", "parquet", "json"]
    day = dt.date(2026, 1, 1) + dt.timedelta(days=number % 300)
    params: dict[str, Any] = {
        "format": formats[number % len(formats)],
        "account_codes": [f"ACC{1 + number % ACCOUNTS}"],
        "sale_date_from": day.isoformat(),
        "sale_date_to": (day + dt.timedelta(days=6)).isoformat(),
    }
    if number % 3 == 0:
        params["money"] = "dollars"
    if number % 7 == 0:
        params["statuses"] = ["SUCCESSFUL"]
    return params


@dataclass
class Outcome:
    seconds: float
    ticks: int
    runs: int
    tick_seconds: float
    run_seconds: float
    statuses: Counter[str]


def _database_name() -> str:
    return f"{base_target().url.database}_request_load"


def _admin(statement: sql.Composed) -> None:
    admin = DatabaseTarget(base_target().url.set(database="postgres")).adbc_uri()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(statement)


def drop_database() -> None:
    name = sql.Identifier(_database_name())
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def fresh_database() -> DatabaseTarget:
    drop_database()
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_database_name())))
    return DatabaseTarget(base_target().url.set(database=_database_name()))


def file_requests(engine: sa.Engine) -> tuple[list[int], list[int]]:
    """The 300 rows, malformed ones spread among the valid: (valid ids, malformed ids)."""
    valid: list[int] = []
    malformed: list[int] = []
    step = REQUESTS // MALFORMED
    for number in range(REQUESTS):
        if number % step == step - 1:
            malformed.append(
                insert_request(engine, MALFORMED_PARAMS[len(malformed)], "request-load")
            )
        else:
            valid.append(insert_request(engine, valid_params(number), "request-load"))
    return valid, malformed


def settle(
    defs: dg.Definitions,
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    engine: sa.Engine,
) -> Outcome:
    sensor = defs.resolve_sensor_def(SENSOR)
    job = defs.resolve_job_def(EXPORT_JOB)
    cursor: str | None = None
    ticks = runs = 0
    tick_seconds = run_seconds = 0.0
    started = time.monotonic()
    seen_keys: set[str] = set()
    while True:
        tick_started = time.monotonic()
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=resources
        ) as context:
            result = sensor(context)
        tick_seconds += time.monotonic() - tick_started
        ticks += 1
        assert isinstance(result, dg.SensorResult)
        cursor = result.cursor
        requested = result.run_requests or []
        for request in requested:
            assert request.run_key not in seen_keys, f"{request.run_key} requested twice"
            seen_keys.add(str(request.run_key))
            run_started = time.monotonic()
            job.execute_in_process(
                run_config=request.run_config,
                tags={**request.tags, "dagster/run_key": str(request.run_key)},
                instance=instance,
                raise_on_error=False,
            )
            run_seconds += time.monotonic() - run_started
            runs += 1
        if not requested and not in_flight(engine):
            break
    return Outcome(
        time.monotonic() - started, ticks, runs, tick_seconds, run_seconds, statuses(engine)
    )


def in_flight(engine: sa.Engine) -> bool:
    c = export_requests.c
    query = sa.select(sa.func.count()).where(c.status.in_(["pending", "queued", "running"]))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one()) > 0


def statuses(engine: sa.Engine) -> Counter[str]:
    c = export_requests.c
    with engine.connect() as connection:
        return Counter(
            dict(connection.execute(sa.select(c.status, sa.func.count()).group_by(c.status)).all())
        )


def check(
    instance: dg.DagsterInstance, engine: sa.Engine, valid: list[int], malformed: list[int]
) -> None:
    runs_by_request = Counter(
        run.tags.get(EXPORT_REQUEST_TAG) for run in instance.get_runs(limit=10 * REQUESTS)
    )
    with engine.connect() as connection:
        rows = {row.id: row for row in connection.execute(sa.select(export_requests))}
    for request_id in valid:
        assert runs_by_request[str(request_id)] == 1, (request_id, runs_by_request[str(request_id)])
        row = rows[request_id]
        assert row.status == "succeeded", (request_id, row.status, row.error)
        assert Path(row.output_path).is_file()
    for request_id in malformed:
        assert runs_by_request[str(request_id)] == 0
        assert rows[request_id].status == "rejected" and rows[request_id].error


def run() -> str:
    target = fresh_database()
    engine = create_engine_for(target)
    try:
        create_schema(engine)
        seed_records(engine, RECORDS, ACCOUNTS, seed=11)
        with tempfile.TemporaryDirectory(prefix="request-load-") as folder:
            resources: dict[str, Any] = {
                "records_database": RecordsDatabase(
                    url=target.url.render_as_string(hide_password=False)
                ),
                "export_storage": ExportStorage(root=str(Path(folder) / "exports")),
            }
            defs = build_definitions(
                resources,
                timezone="UTC",
                first_day=dt.date(2025, 1, 1),
            )
            home = Path(folder) / "dagster_home"
            home.mkdir()
            with dg.instance_for_test(temp_dir=str(home)) as instance:
                valid, malformed = file_requests(engine)
                outcome = settle(defs, resources, instance, engine)
                check(instance, engine, valid, malformed)
    finally:
        engine.dispose()
        drop_database()
    report = (
        f"request load: {REQUESTS} requests ({len(valid)} valid, {len(malformed)} malformed), "
        f"{RECORDS:,} records: settled in {outcome.seconds:.1f} s = "
        f"{REQUESTS / outcome.seconds:.1f} requests/s; {outcome.ticks} sensor ticks "
        f"({outcome.tick_seconds:.1f} s), {outcome.runs} runs in process "
        f"({outcome.run_seconds:.1f} s, {outcome.run_seconds / max(outcome.runs, 1):.2f} s each); "
        f"rows: {json.dumps(dict(outcome.statuses), sort_keys=True)}; exactly one run per valid "
        "request: yes"
    )
    print(report)
    return report


if __name__ == "__main__":
    run()
