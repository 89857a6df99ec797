"""The product as deployed: `dagster-daemon` on deploy/dagster.yaml (PostgreSQL storage,
queued runs, pools) turns request rows into files, with nothing but the database between
the web app and Dagster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from sqlalchemy.engine import Engine

from pipelines import request_store
from record_exports.seed import seed_records
from tests.dagster_processes import (
    daemon_command,
    deployed_environment,
    start_in_own_group,
    stop_process_group,
)

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 150
FINISHED = {"succeeded", "failed", "rejected"}


@pytest.fixture
def daemon(
    tmp_path: Path, postgres_url: str, pg_engine: Engine, dagster_storage_url: str
) -> Iterator[tuple[Path, Path]]:
    """A running daemon on a fresh instance; yields (DAGSTER_HOME, exports root)."""
    home, exports = tmp_path / "dagster_home", tmp_path / "exports"
    env = deployed_environment(home, exports, dagster_storage_url, postgres_url)
    with (tmp_path / "daemon.log").open("wb") as log:
        process = start_in_own_group(daemon_command(), env, log)
        try:
            yield home, exports
        finally:
            assert stop_process_group(process), "processes of the daemon's group are still running"


def wait_until_finished(
    engine: Engine, ids: list[int], log: Path
) -> dict[int, request_store.ExportRequest]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        rows = {i: request_store.get_request(engine, i) for i in ids}
        if all(row is not None and row.status in FINISHED for row in rows.values()):
            return {i: row for i, row in rows.items() if row is not None}
        if time.monotonic() > deadline:
            tail = log.read_text()[-4000:]
            pytest.fail(f"requests not finished after {TIMEOUT_SECONDS} s: {rows}\n{tail}")
        time.sleep(1)


def file_request_with_cli(records_url: str, home: Path, *options: str) -> int:
    """`record-exports request ...`, as a person at a terminal would; prints the new id."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "record-exports"), "request", *options],
        env={**os.environ, "RECORDS_DATABASE_URL": records_url, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


def test_requests_become_files_through_the_daemon(
    daemon: tuple[Path, Path],
    pg_engine: Engine,
    postgres_url: str,
    tmp_path: Path,
    dagster_storage_url: str,
) -> None:
    home, exports = daemon
    seed_records(pg_engine, 300, 2, seed=5)
    csv_id = file_request_with_cli(
        postgres_url, tmp_path / "cli_home", "--format", "csv", "--account", "ACC1"
    )
    xlsx_id = request_store.insert_request(
        pg_engine, {"format": "xlsx", "output_name": "all"}, "web"
    )
    bad_id = request_store.insert_request(pg_engine, {"format": "pdf"}, "web")
    unknown_id = request_store.insert_request(pg_engine, {"account_codes": ["ACC77"]}, "web")

    rows = wait_until_finished(
        pg_engine, [csv_id, xlsx_id, bad_id, unknown_id], tmp_path / "daemon.log"
    )

    assert {i: rows[i].status for i in rows} == {
        csv_id: "succeeded",
        xlsx_id: "succeeded",
        bad_id: "rejected",
        unknown_id: "rejected",
    }
    assert "format" in (rows[bad_id].error or "")
    assert "ACC77" in (rows[unknown_id].error or "")
    csv_path = Path(rows[csv_id].output_path or "")
    assert csv_path.parent == exports / "requests" / str(csv_id)
    assert pl.read_csv(csv_path).height == rows[csv_id].row_count
    assert Path(rows[xlsx_id].output_path or "") == exports / "requests" / str(xlsx_id) / "all.xlsx"
    assert Path(str(rows[xlsx_id].output_path) + ".manifest.json").exists()

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_PG_URL", dagster_storage_url)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for request_id in (csv_id, xlsx_id):
                runs = instance.get_runs(dg.RunsFilter(tags={"export_request_id": str(request_id)}))
                assert [run.run_id for run in runs] == [rows[request_id].run_id]
                assert runs[0].tags["dagster/run_key"] == f"export-request-{request_id}"
            assert not instance.get_runs(dg.RunsFilter(tags={"export_request_id": str(bad_id)}))
