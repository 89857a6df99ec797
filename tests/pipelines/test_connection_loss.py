"""A connection lost mid-export is retried with backoff and the file still equals the COPY
oracle; the retry decision is checked against errors captured from real terminations on
each layer (psycopg, SQLAlchemy, ADBC), and a server gone for good fails after MAX_RETRIES.

Where a connection is cut: always after the first rows arrived, while ADBC streams COPY
data. ADBC 1.8.0 aborts the process when the connection dies before its COPY stream starts
(apache/arrow-adbc#3878, see README "Retries"), so no test cuts one there.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc_postgresql
import dagster as dg
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine

from pipelines import retries
from pipelines.cli import main
from pipelines.definitions import build_definitions
from record_exports.database import DatabaseSettingError, parse_database_url
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams, parse_export_params
from record_exports.query import RecordFilters, build_query
from record_exports.reader import adbc_batches, connect, iter_record_batches
from record_exports.seed import seed_records
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase
from tests.factories import libpq_url, oracle_copy_csv
from tests.postgres import ADMIN_URL
from tests.tcp_proxy import TcpProxy, tcp_proxy

# Enough records that the COPY stream (about 250 bytes a record) outlasts the batches the
# reader holds and the socket buffers, so a cut after the first batch lands mid-stream.
RECORDS = 150_000
# Bytes through the proxy before it drops: past the connection's setup and the first batch.
DROP_AFTER_BYTES = 2_000_000


def terminate_copy_backends(database: str) -> int:
    """`pg_terminate_backend` every backend of `database` that runs the export's COPY."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND query LIKE 'COPY (%%'",
            (database,),
        ).fetchall()
    return sum(1 for (terminated,) in rows if terminated)


class TerminatingProgress(ProgressReporter):
    """Reports progress as usual; at the first rows of the first attempt (marker file not
    there yet) it terminates the export's COPY backend, while the stream is running."""

    database: str
    marker: str

    def callback(
        self, log: logging.Logger | dg.DagsterLogManager, label: str
    ) -> Callable[[int], None]:
        report = super().callback(log, label)
        marker = Path(self.marker)

        def terminate_once(rows: int) -> None:
            if not marker.exists():
                marker.write_text(str(terminate_copy_backends(self.database)))
            report(rows)

        return terminate_once


def export_job(url: str, root: Path, **overrides: object) -> dg.JobDefinition:
    resources = {
        "records_database": RecordsDatabase(url=url),
        "export_storage": ExportStorage(root=str(root)),
        **overrides,
    }
    return build_definitions(resources, timezone="UTC").resolve_job_def("export_records")


def event_kinds(result: dg.ExecuteInProcessResult) -> list[dg.DagsterEventType]:
    return [event.event_type for event in result.all_events]


def retry_warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.all_logs(run_id)
    return [
        record.user_message
        for record in records
        if record.user_message.startswith("transient database error, will retry")
    ]


def only_export_files(root: Path) -> list[Path]:
    """Every file under the exports root, asserting none is a leftover partial file."""
    files = sorted(path for path in root.rglob("*") if path.is_file())
    assert not [path for path in files if ".partial-" in path.name], files
    return files


@pytest.fixture
def big_database(postgres_url: str, pg_engine: Engine) -> str:
    seed_records(pg_engine, RECORDS, 3, seed=7)
    return postgres_url


def database_name(url: str) -> str:
    name = parse_database_url(url).url.database
    assert name is not None
    return name


@pytest.mark.slow
def test_terminated_backend_mid_read_is_retried_and_equals_the_oracle(
    big_database: str, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    marker = tmp_path / "terminated"
    job = export_job(
        big_database,
        tmp_path / "exports",
        progress_reporter=TerminatingProgress(
            database=database_name(big_database), marker=str(marker)
        ),
    )
    result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)
    assert marker.read_text() == "1", "the export's COPY backend was not found"
    assert result.success
    kinds = event_kinds(result)
    assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert kinds.count(dg.DagsterEventType.STEP_RESTARTED) == 1
    warnings = retry_warnings(dagster_instance, result.run_id)
    assert len(warnings) == 1 and "terminating connection" in warnings[0], warnings
    retry = next(
        event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"
    )
    assert str(retry.message).endswith("requested a retry in 2.0 seconds."), retry.message
    csv_file, manifest = only_export_files(tmp_path / "exports")
    assert manifest.name == csv_file.name + ".manifest.json"
    assert csv_file.read_bytes() == oracle_copy_csv(big_database)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with tcp_proxy() as running:
        yield running


def through(proxy: TcpProxy, url: str) -> str:
    """The same database, reached through the proxy."""
    return (
        parse_database_url(url)
        .url.set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )


@pytest.mark.slow
def test_network_drop_mid_read_is_retried_and_equals_the_oracle(
    big_database: str,
    dagster_instance: dg.DagsterInstance,
    tmp_path: Path,
    proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retries, "BASE_DELAY_SECONDS", 0.2)
    proxy.drop_connections_after(DROP_AFTER_BYTES)
    job = export_job(through(proxy, big_database), tmp_path / "exports")
    result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)
    assert proxy.drops == 1
    assert result.success
    assert event_kinds(result).count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    (warning,) = retry_warnings(dagster_instance, result.run_id)
    assert "server closed the connection unexpectedly" in warning
    csv_file, _manifest = only_export_files(tmp_path / "exports")
    assert csv_file.read_bytes() == oracle_copy_csv(big_database)


@pytest.mark.slow
def test_a_server_gone_for_good_fails_after_max_retries_in_one_line(
    big_database: str,
    dagster_env: Path,
    tmp_path: Path,
    proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI as a user runs it: the network drops mid-read and the server never comes
    back. Every retry is refused; the export fails with exit 1 and one line, leaving no file."""
    monkeypatch.setattr(retries, "BASE_DELAY_SECONDS", 0.05)
    monkeypatch.setenv("RECORDS_DATABASE_URL", through(proxy, big_database))
    output = tmp_path / "out"
    output.mkdir()
    proxy.drop_connections_after(DROP_AFTER_BYTES, for_good=True)
    assert main(["export", "--output", str(output / "records.csv")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: export failed:"), error
    assert "Connection refused" in error and "Traceback" not in error
    assert list(output.iterdir()) == []
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        events = [entry.dagster_event for entry in instance.all_logs(run.run_id)]
        kinds = [event.event_type for event in events if event is not None]
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == retries.MAX_RETRIES
    assert kinds.count(dg.DagsterEventType.STEP_FAILURE) == 1


# --- The classifier, against errors captured from real terminations ---------------------


def _capture(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001 - the error is what the test looks at
        return error
    raise AssertionError("the action did not fail")


def _terminate_when_running(database: str, query_start: str) -> threading.Thread:
    """Terminate, from another connection, the backend of `database` running a query that
    starts with `query_start`, as soon as it shows in pg_stat_activity."""

    def terminate() -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            for _ in range(600):
                (done,) = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND state = 'active' AND query LIKE %s "
                    "AND pid <> pg_backend_pid()",
                    (database, query_start + "%"),
                ).fetchone() or (0,)
                if done:
                    return
                admin.execute("SELECT pg_sleep(0.05)")

    thread = threading.Thread(target=terminate)
    thread.start()
    return thread


def psycopg_terminated(url: str) -> BaseException:
    killer = _terminate_when_running(database_name(url), "SELECT pg_sleep(30)")
    with psycopg.connect(libpq_url(url)) as connection:
        error = _capture(lambda: connection.execute("SELECT pg_sleep(30)"))
    killer.join()
    return error


def sqlalchemy_terminated(url: str) -> BaseException:
    engine = sa.create_engine(url)
    killer = _terminate_when_running(database_name(url), "SELECT pg_sleep(30)")
    try:
        with engine.connect() as connection:
            return _capture(lambda: connection.execute(sa.text("SELECT pg_sleep(30)")))
    finally:
        killer.join()
        engine.dispose()


def adbc_read(url: str, after_first_batch: Callable[[], object]) -> BaseException:
    """The export's own read path, cut after its first batch arrived."""
    params = ExportParams()
    query = build_query(
        params.columns, False, RecordFilters.from_params(params, []), is_postgresql=True
    )

    def read() -> None:
        for number, _batch in enumerate(
            iter_record_batches(parse_database_url(url), query, batch_bytes=64 * 1024)
        ):
            if number == 0:
                after_first_batch()

    return _capture(read)


def adbc_terminated(url: str) -> BaseException:
    return adbc_read(url, lambda: terminate_copy_backends(database_name(url)))


def adbc_terminated_before_the_first_row(url: str) -> BaseException:
    """Cut while the server works on the query (a sleep standing in for a long sort), after
    COPY began but before any row was sent: still the stream's error, not an abort."""
    database = database_name(url)
    killer = _terminate_when_running(database, "COPY (SELECT pg_sleep(30)")

    def read() -> None:
        with (
            closing(connect(parse_database_url(url))) as connection,
            closing(connection.cursor()) as cursor,
        ):
            cursor.execute("SELECT pg_sleep(30) AS slept")
            for _batch in adbc_batches(cursor):
                pass

    try:
        return _capture(read)
    finally:
        killer.join()


def psycopg_network_drop(url: str, proxy: TcpProxy) -> BaseException:
    with psycopg.connect(libpq_url(through(proxy, url))) as connection:
        connection.execute("SELECT 1")
        proxy.drop_all()
        return _capture(lambda: connection.execute("SELECT 1"))


def sqlalchemy_network_drop(url: str, proxy: TcpProxy) -> BaseException:
    engine = sa.create_engine(through(proxy, url))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            proxy.drop_all()
            return _capture(lambda: connection.execute(sa.text("SELECT 1")))
    finally:
        engine.dispose()


def adbc_network_drop(url: str, proxy: TcpProxy) -> BaseException:
    return adbc_read(through(proxy, url), proxy.drop_all)


@pytest.mark.slow
def test_real_connection_losses_are_transient_on_every_layer(
    big_database: str, proxy: TcpProxy
) -> None:
    captured = {
        "psycopg terminated": psycopg_terminated(big_database),
        "sqlalchemy terminated": sqlalchemy_terminated(big_database),
        "adbc terminated": adbc_terminated(big_database),
        "adbc terminated before the first row": adbc_terminated_before_the_first_row(big_database),
        "psycopg network drop": psycopg_network_drop(big_database, proxy),
        "sqlalchemy network drop": sqlalchemy_network_drop(big_database, proxy),
        "adbc network drop": adbc_network_drop(big_database, proxy),
    }
    # Stopping the proxy last: every layer's connect is then refused.
    engine = sa.create_engine(through(proxy, big_database))
    proxy.stop()
    captured["psycopg refused"] = _capture(
        lambda: psycopg.connect(libpq_url(through(proxy, big_database)))
    )
    captured["sqlalchemy refused"] = _capture(lambda: engine.connect())
    engine.dispose()
    captured["adbc refused"] = adbc_read(through(proxy, big_database), lambda: None)

    described = {name: f"{type(error).__name__}: {error}" for name, error in captured.items()}
    assert all(retries.is_transient(error) for error in captured.values()), described
    # The codes the server sent survive on each layer where it sent one.
    for name in (
        "psycopg terminated",
        "sqlalchemy terminated",
        "adbc terminated",
        "adbc terminated before the first row",
    ):
        assert retries.sqlstate_of(captured[name]) == "57P01", described[name]


def _psycopg_statement(url: str, sql: str) -> BaseException:
    with psycopg.connect(libpq_url(url)) as connection:
        return _capture(lambda: connection.execute(sql))


def _adbc_statement(url: str, sql: str) -> BaseException:
    def run() -> None:
        with adbc_postgresql.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()

    return _capture(run)


def test_errors_that_are_not_a_lost_connection_are_not_retried(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            sa_syntax = _capture(lambda: connection.execute(sa.text("SELEC 1")))
        with engine.connect() as connection:
            sa_missing = _capture(
                lambda: connection.execute(sa.text("SELECT * FROM no_such_table"))
            )
    finally:
        engine.dispose()
    missing_database = parse_database_url(postgres_url).url.set(database="rx_no_such_db")
    captured = {
        "sqlalchemy syntax": sa_syntax,
        "sqlalchemy missing table": sa_missing,
        "psycopg division by zero": _psycopg_statement(postgres_url, "SELECT 1 / 0"),
        "psycopg missing database": _capture(
            lambda: psycopg.connect(
                libpq_url(missing_database.render_as_string(hide_password=False))
            )
        ),
        "adbc syntax": _adbc_statement(postgres_url, "SELEC 1"),
        "adbc missing table": _adbc_statement(postgres_url, "SELECT * FROM no_such_table"),
        "adbc bad cast": _adbc_statement(postgres_url, "SELECT 'x'::int"),
        "bad export input": _capture(lambda: parse_export_params({"format": "xml"})),
        "bad database url": _capture(lambda: parse_database_url("oracle://scott@tiger/db")),
        "a bug": _capture(lambda: [][1]),
    }
    assert isinstance(captured["bad export input"], ExportInputError)
    assert isinstance(captured["bad database url"], DatabaseSettingError)
    described = {name: f"{type(error).__name__}: {error}" for name, error in captured.items()}
    assert not [name for name, error in captured.items() if retries.is_transient(error)], described
    assert retries.sqlstate_of(captured["adbc syntax"]) == "42601"
    assert retries.sqlstate_of(captured["sqlalchemy missing table"]) == "42P01"


@pytest.fixture
def role_without_connections(postgres_server: str) -> Iterator[str]:
    """A login role whose connection limit is 0: each connect is refused with 53300, the
    server's answer when it has no connection left to give (superusers are never refused)."""
    role = f"rx_full_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(ADMIN_URL), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 0").format(sql.Identifier(role))
        )
    try:
        yield role
    finally:
        with psycopg.connect(libpq_url(ADMIN_URL), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_server_out_of_connections_is_worth_another_attempt(
    postgres_url: str, role_without_connections: str
) -> None:
    """`too many connections` passes when other sessions end, as a restart does. Refused at
    connect, the error carries libpq's text but no SQLSTATE on either layer."""
    as_role = parse_database_url(postgres_url).url.set(username=role_without_connections)
    url = libpq_url(as_role.render_as_string(hide_password=False))
    captured = {
        "psycopg": _capture(lambda: psycopg.connect(url)),
        "adbc": _capture(lambda: adbc_postgresql.connect(url).close()),
    }
    described = {name: f"{type(error).__name__}: {error}" for name, error in captured.items()}
    assert all("too many connections" in text for text in described.values()), described
    assert all(retries.is_transient(error) for error in captured.values()), described


def test_a_lost_connection_under_a_wrapper_is_still_transient() -> None:
    """What `export_step_errors` sees when code re-raises: the chain decides, and a bad-input
    error on top is never retried whatever lies below it."""
    lost = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    wrapped = RuntimeError("export failed")
    wrapped.__cause__ = lost
    assert retries.is_transient(wrapped)
    bad = ExportInputError("format", "unknown value")
    bad.__context__ = lost
    assert not retries.is_transient(bad)
    assert [retries.backoff_seconds(n) for n in range(3)] == [2.0, 4.0, 8.0]
