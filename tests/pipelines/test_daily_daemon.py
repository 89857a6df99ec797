"""Daily exports as deployed: a backfill launched through the webserver's GraphQL API, the way
the UI launches it, run by a real `dagster-daemon` on deploy/dagster.yaml; then an edit
shows in its file within a minute through `changed_records_sensor`, and no other file moves."""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from sqlalchemy.engine import Engine

from record_exports.daily_layout import LOCKS_FOLDER
from record_exports.schema import bookkeeping_records
from record_exports.seed import account_id, seed_records
from resources.export_storage import ExportStorage
from tests.dagster_processes import (
    daemon_command,
    deployed_environment,
    free_port,
    graphql,
    start_in_own_group,
    stop_process_group,
    wait_for,
    webserver_command,
)
from tests.factories import oracle_account_day_csv

FIRST, LAST = dt.date(2026, 10, 1), dt.date(2026, 11, 28)
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(
    tmp_path: Path, postgres_url: str, pg_engine: Engine, dagster_storage_url: str
) -> Iterator[tuple[dg.DagsterInstance, str, Path, Path]]:
    """Daemon and webserver on one fresh instance; yields (instance, GraphQL URL, exports
    root, log file). Both are stopped, and their process groups gone, afterwards."""
    home, exports, log_path = tmp_path / "home", tmp_path / "exports", tmp_path / "processes.log"
    env = deployed_environment(
        home, exports, dagster_storage_url, postgres_url, EXPORTS_FIRST_DAY="2026-01-01"
    )
    port = free_port()
    with log_path.open("wb") as log:
        processes = [
            start_in_own_group(command, env, log)
            for command in (daemon_command(), webserver_command(port))
        ]
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("DAGSTER_PG_URL", dagster_storage_url)
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    yield instance, f"http://127.0.0.1:{port}/graphql", exports, log_path
        finally:
            stopped = [stop_process_group(p, signal.SIGINT) for p in processes]
            assert all(stopped), "processes of the daemon's or webserver's group still run"


def server_up(url: str) -> bool:
    try:
        return bool(graphql(url, "{ version }", {}).get("data"))
    except OSError:
        return False


def test_backfill_through_the_daemon_then_an_edit_within_a_minute(
    deployment: tuple[dg.DagsterInstance, str, Path, Path], pg_engine: Engine, postgres_url: str
) -> None:
    instance, url, exports, log = deployment
    seed_records(pg_engine, 2_000, 3, seed=9)
    wait_for("the webserver", lambda: server_up(url), 180, log)

    days = [(FIRST + dt.timedelta(days=n)).isoformat() for n in range((LAST - FIRST).days + 1)]
    answer = graphql(
        url,
        LAUNCH_PARTITION_BACKFILL_MUTATION,
        {
            "backfillParams": {
                "assetSelection": [{"path": ["daily_account_exports"]}],
                "partitionNames": days,
            }
        },
    )
    launched = answer["data"]["launchPartitionBackfill"]  # type: ignore[index]
    assert launched["__typename"] == "LaunchBackfillSuccess", answer
    backfill_id = launched["backfillId"]

    def backfill_done() -> bool:
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None
        assert backfill.status.value not in ("FAILED", "CANCELED", "COMPLETED_FAILED")
        return bool(backfill.status.value == "COMPLETED_SUCCESS")

    wait_for("the backfill", backfill_done, 240, log)
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert len(runs) == 1  # the whole range in one run (BackfillPolicy.single_run)
    assert instance.get_materialized_partitions(dg.AssetKey("daily_account_exports")) >= set(days)
    storage = ExportStorage(root=str(exports))
    expected = live_account_days(pg_engine, FIRST, LAST)
    for code, day in expected:
        path = storage.daily_path(code, day, "csv")
        assert path.read_bytes() == oracle_account_day_csv(postgres_url, code, day), path
        assert storage.daily_path(code, day, "xlsx").exists()
    files = daily_files(exports)
    assert len(files) == 4 * len(expected) > 200  # csv, xlsx and their manifests
    before = {path: path.stat().st_mtime_ns for path in files}

    code, day = sorted(expected)[len(expected) // 2]
    r = bookkeeping_records.c
    with pg_engine.begin() as connection:  # an edit stamped in the past, as skewed clocks do
        connection.execute(
            sa.update(bookkeeping_records)
            .where(r.account_id == account_id(code), r.sale_date == day)
            .values(
                item_name="edited after the backfill",
                updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            )
        )
    edited = storage.daily_path(code, day, "csv")
    seconds = wait_for(
        "the edit in its file",
        lambda: b"edited after the backfill" in edited.read_bytes(),
        60,
        log,
    )
    assert seconds < 60
    wait_for(
        "the re-export's run",
        lambda: (
            not instance.get_runs(
                dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
            )
        ),
        60,
        log,
    )
    assert edited.read_bytes() == oracle_account_day_csv(postgres_url, code, day)
    after = {path: path.stat().st_mtime_ns for path in daily_files(exports)}
    moved = {path for path in after if after[path] != before.get(path)}
    mine = {storage.daily_path(code, day, ext) for ext in ("csv", "xlsx")}
    assert moved == mine | {Path(f"{path}.manifest.json") for path in mine}


def daily_files(exports: Path) -> set[Path]:
    return {
        path
        for path in (exports / "daily").rglob("*")
        if path.is_file() and LOCKS_FOLDER not in path.parts
    }


def live_account_days(engine: Engine, first: dt.date, last: dt.date) -> set[tuple[str, dt.date]]:
    query = sa.text(
        "SELECT DISTINCT a.account_code, r.sale_date FROM bookkeeping_records r "
        "JOIN accounts a ON a.id = r.account_id "
        "WHERE r.deleted_at IS NULL AND r.sale_date BETWEEN :first AND :last"
    )
    with engine.connect() as connection:
        return {(c, d) for c, d in connection.execute(query, {"first": first, "last": last})}
