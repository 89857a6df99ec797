"""The ADBC reader: batches in order, a prefetch thread that never outlives its consumer."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import adbc_driver_manager
import psycopg
import pyarrow as pa
import pytest
from adbc_driver_manager._reader import AdbcRecordBatchReader
from sqlalchemy.engine import Engine

from record_exports.database import DatabaseTarget
from record_exports.params import ExportParams
from record_exports.query import CompiledQuery, RecordFilters, build_query
from record_exports.reader import adbc_batches, connect, iter_record_batches, prefetch
from record_exports.seed import seed_records
from tests.postgres import client_sessions

SMALL_BATCH_BYTES = 16 * 1024


def _client_sessions(target: DatabaseTarget) -> int:
    return client_sessions(target.adbc_uri())


def _wait_for_no_sessions(target: DatabaseTarget) -> int:
    deadline = time.monotonic() + 5
    while (count := _client_sessions(target)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_batches_come_in_export_order(pg_engine: Engine, pg_target: DatabaseTarget) -> None:
    seed_records(pg_engine, 2_000, 3, seed=5)
    query = build_query(ExportParams().columns, False, RecordFilters(), is_postgresql=True)
    batches = list(iter_record_batches(pg_target, query, SMALL_BATCH_BYTES))
    assert len(batches) > 3
    ids = [value for batch in batches for value in batch.column("id").to_pylist()]
    with psycopg.connect(pg_target.adbc_uri()) as connection:
        expected = [
            row[0]
            for row in connection.execute(
                "SELECT id::text FROM bookkeeping_records WHERE deleted_at IS NULL "
                "ORDER BY updated_at DESC, id DESC"
            )
        ]
    assert ids == expected


def test_consumer_stopping_early_leaves_nothing_running(
    pg_engine: Engine, pg_target: DatabaseTarget
) -> None:
    seed_records(pg_engine, 3_000, 3, seed=5)
    pg_engine.dispose()  # its pooled connection would count as a session
    query = build_query(ExportParams().columns, False, RecordFilters(), is_postgresql=True)
    before = set(threading.enumerate())
    batches = prefetch(iter_record_batches(pg_target, query, SMALL_BATCH_BYTES))
    first = next(batches)
    assert first.num_rows > 0
    assert _client_sessions(pg_target) == 1
    batches.close()
    assert set(threading.enumerate()) - before == set()
    assert _wait_for_no_sessions(pg_target) == 0


def test_prefetch_hands_errors_to_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("the database went away")

    items = prefetch(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="went away"):
        next(items)


def test_prefetch_closes_its_source_when_the_consumer_stops() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                number += 1
                yield number
        finally:
            closed.set()

    with closing(prefetch(endless(), depth=2)) as items:
        assert [next(items) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert closed.wait(2)


def _session_settings(target: DatabaseTarget, query: CompiledQuery) -> dict[str, str]:
    batches = list(iter_record_batches(target, query))
    table = pa.Table.from_batches(batches)
    return {name: str(table.column(name)[0]) for name in table.column_names}


SHOW_SETTINGS = (
    "SELECT current_setting('jit') AS jit, "
    "current_setting('max_parallel_workers_per_gather') AS max_parallel_workers_per_gather, "
    "current_setting('enable_indexscan') AS enable_indexscan"
)


def test_reader_session_runs_with_the_server_plan(
    pg_engine: Engine, pg_target: DatabaseTarget
) -> None:
    assert _session_settings(pg_target, CompiledQuery(sql=SHOW_SETTINGS)) == {
        "jit": "off",
        "max_parallel_workers_per_gather": "1",
        "enable_indexscan": "off",
    }


def test_query_settings_win_over_the_plan(pg_engine: Engine, pg_target: DatabaseTarget) -> None:
    query = CompiledQuery(sql=SHOW_SETTINGS, settings={"max_parallel_workers_per_gather": "0"})
    assert _session_settings(pg_target, query)["max_parallel_workers_per_gather"] == "0"


def test_probe_adbc_private_reader_keeps_sqlstate(pg_target: DatabaseTarget) -> None:
    """Probe of the private adbc_driver_manager names `adbc_batches` relies on: the cursor's
    `_results.reader` is an `adbc_driver_manager._reader.AdbcRecordBatchReader`, which
    re-raises a failed read as an ADBC error with its SQLSTATE (here 22012, raised by the
    server mid-stream, after rows were sent)."""
    with (
        closing(connect(pg_target)) as connection,
        closing(connection.cursor()) as cursor,
    ):
        cursor.execute("SELECT n, 1 / (n - 40000) AS boom FROM generate_series(1, 100000) AS n")
        reader = adbc_batches(cursor)
        assert isinstance(reader, AdbcRecordBatchReader)
        with pytest.raises(adbc_driver_manager.Error) as raised:
            for _batch in reader:
                pass
    assert raised.value.sqlstate == "22012"


ABORTS_ON_LOST_CONNECTION = """
import sys
import adbc_driver_postgresql.dbapi as adbc_postgresql
import psycopg

uri = sys.argv[1]
with adbc_postgresql.connect(uri) as connection, connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    (pid,) = cursor.fetchone()
    with psycopg.connect(uri, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    try:
        cursor.execute("SELECT 1")
    except Exception as error:
        print(f"raised {type(error).__name__}")
"""


def test_probe_adbc_aborts_when_the_connection_dies_before_a_result(
    pg_target: DatabaseTarget,
) -> None:
    """The hazard README "Retries" documents (apache/arrow-adbc#3878, fixed in 1.11): with
    the pinned driver, a statement sent on a connection the server already closed aborts the
    whole process (std::logic_error from a NULL SQLSTATE) instead of raising. When this test
    fails, the driver raises instead: update README "Retries" and this test."""
    result = subprocess.run(
        [sys.executable, "-c", ABORTS_ON_LOST_CONNECTION, pg_target.adbc_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGABRT, (result.returncode, result.stdout)
    assert "basic_string" in result.stderr and "null not valid" in result.stderr
