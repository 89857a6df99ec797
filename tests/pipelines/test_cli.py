"""`record-exports` as a user runs it: exit codes, one-line errors, files and recorded runs."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.cli import main
from record_exports.schema import export_requests
from record_exports.seed import seed_records
from tests.factories import count_rows
from tests.sqlite_lock import sqlite_write_lock

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        timeout=180,
    )


@pytest.fixture
def cli_env(postgres_url: str, dagster_env: Path) -> dict[str, str]:
    return {
        "RECORDS_DATABASE_URL": postgres_url,
        "EXPORTS_DIR": str(dagster_env),
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
    }


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_init_db_twice_and_seed(
    postgres_url: str, dagster_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", postgres_url)
    assert main(["init-db"]) == 0
    assert main(["init-db"]) == 0
    assert main(["seed", "--records", "1000", "--accounts", "3", "--seed", "5"]) == 0
    assert main(["seed", "--records", "1000", "--if-empty"]) == 0
    engine = sa.create_engine(postgres_url)
    assert count_rows(engine, "bookkeeping_records") == 1000
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("definitely not a url", "malformed"),
        ("postgresql://nobody@127.0.0.1:1/nothing", "unreachable"),
        ("oracle://scott@tiger/db", "unsupported"),
    ],
)
def test_bad_database_url_is_one_line_exit_2(url: str, hint: str, dagster_env: Path) -> None:
    result = run_cli("init-db", env={"RECORDS_DATABASE_URL": url})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "RECORDS_DATABASE_URL" in lines[0] and hint in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_export_from_a_database_without_tables_exit_2(tmp_path: Path, dagster_env: Path) -> None:
    path = tmp_path / "records.db"
    sqlite3.connect(path).close()
    result = run_cli("export", env={"RECORDS_DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 2
    assert "has no records tables; run `record-exports init-db` first" in result.stderr
    assert files_under(dagster_env) == []


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: RECORDS_DATABASE_URL (sqlite:///"), lines[0]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "request"])
def test_missing_sqlite_file_exit_2_and_not_created(
    command: str, tmp_path: Path, dagster_env: Path
) -> None:
    path = tmp_path / "records.db"
    result = run_cli(command, "--format", "xlsx", env={"RECORDS_DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 2
    assert "names a SQLite file that does not exist" in one_line_error(result)
    assert not path.exists()
    assert files_under(dagster_env) == []


@pytest.mark.slow
def test_sqlite_file_that_is_not_a_database_exit_2(tmp_path: Path, dagster_env: Path) -> None:
    path = tmp_path / "records.db"
    content = b"id,item_name\n1,exported last week\n" * 1_000
    path.write_bytes(content)
    result = run_cli("export", env={"RECORDS_DATABASE_URL": f"sqlite:///{path}"})
    assert result.returncode == 2
    assert "is not a SQLite database" in one_line_error(result)
    assert path.read_bytes() == content
    assert files_under(dagster_env) == []


@pytest.mark.slow
def test_sqlite_locked_by_a_writer_exit_1_then_exports(tmp_path: Path, dagster_env: Path) -> None:
    path = tmp_path / "records.db"
    env = {"RECORDS_DATABASE_URL": f"sqlite:///{path}"}
    assert run_cli("seed", "--records", "300", "--accounts", "2", env=env).returncode == 0
    with sqlite_write_lock(path):
        result = run_cli("export", "--format", "xlsx", env=env)
        assert result.returncode == 1
        assert "is locked by another connection writing to it" in one_line_error(result)
        assert files_under(dagster_env) == []
    result = run_cli("export", "--format", "xlsx", env=env)
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.split("\t")[0])
    assert written.suffix == ".xlsx" and written.exists()


@pytest.mark.slow
def test_export_runs_through_dagster(cli_env: dict[str, str], dagster_env: Path) -> None:
    engine = sa.create_engine(cli_env["RECORDS_DATABASE_URL"])
    assert run_cli("seed", "--records", "2000", "--accounts", "2", env=cli_env).returncode == 0
    result = run_cli(
        "export", "--format", "ndjson", "--account", "ACC1", "--money", "dollars", env=cli_env
    )
    assert result.returncode == 0, result.stderr
    path_text, rows_text, run_text = result.stdout.strip().split("\t")
    path = Path(path_text)
    assert path.parent == dagster_env / "on-demand" and path.suffix == ".ndjson"
    assert int(rows_text.split()[0]) == len(path.read_text("utf-8").splitlines()) > 100
    assert path.with_name(path.name + ".manifest.json").exists()
    run_id = run_text.split()[-1]
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == "export_records"
        assert run.status == dg.DagsterRunStatus.SUCCESS

    target = dagster_env / "chosen" / "report.csv"
    result = run_cli("export", "--output", str(target), "--columns", "id,profit_cents", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert target.read_text().splitlines()[0] == "id,profit_cents"
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--format", "xml"], "format"),
        (["--columns", "id,nope"], "columns"),
        (["--account", "NOPE"], "account_codes"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "sale_date_from"),
        (["--status", "SHIPPED"], "statuses"),
        (["--money", "euros"], "money"),
        (["--format", "xlsx", "--compression", "gzip"], "compression"),
        (["--columns", "order_remark"], "columns"),
    ],
)
def test_bad_export_input_exit_2_nothing_written(
    cli_env: dict[str, str], dagster_env: Path, args: list[str], field: str
) -> None:
    assert run_cli("seed", "--records", "10", env=cli_env).returncode == 0
    result = run_cli("export", *args, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {field}:"), result.stderr
    assert "Traceback" not in result.stderr
    assert files_under(dagster_env) == []


@pytest.mark.slow
def test_failed_export_exit_1_leaves_nothing(
    cli_env: dict[str, str], tmp_path: Path, small_tmpfs: Path
) -> None:
    """The disk fills up mid-export (a 256 KiB tmpfs for a larger CSV): exit 1 in one line
    and nothing left, not even a partial file. (A place no file can be written at at all is
    bad input, caught before the export: tests/pipelines/test_cli_bad_input.py.)"""
    assert run_cli("seed", "--records", "5000", env=cli_env).returncode == 0
    result = run_cli("export", "--output", str(small_tmpfs / "x.csv"), env=cli_env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: export failed:")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(small_tmpfs.iterdir()) == []


def test_request_inserts_a_pending_row(
    postgres_url: str,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", postgres_url)
    assert main(["request", "--format", "xlsx", "--account", "ACC1", "--requested-by", "ann"]) == 0
    printed = capsys.readouterr()
    request_id = int(printed.out.strip())
    # stdout is the id alone (for scripts); how to follow the request goes to stderr.
    assert printed.err.startswith(f"request {request_id} is pending; export_requests_sensor")
    assert f"tag export_request_id={request_id}" in printed.err
    assert f"FROM export_requests WHERE id = {request_id}" in printed.err
    assert printed.err.count("\n") == 1
    engine: Engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(export_requests).where(export_requests.c.id == request_id)
        ).one()
    engine.dispose()
    assert row.status == "pending" and row.requested_by == "ann"
    assert row.params["format"] == "xlsx" and row.params["account_codes"] == ["ACC1"]
    with pytest.raises(SystemExit) as exited:
        main(["request", "--format", "xml"])
    assert exited.value.code == 2


def test_init_db_creates_the_folder_of_a_sqlite_file(
    tmp_path: Path, dagster_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `make demo` relies on for the default `data/records.db`."""
    database = tmp_path / "new" / "folder" / "records.db"
    monkeypatch.setenv("RECORDS_DATABASE_URL", f"sqlite:///{database}")
    assert main(["init-db"]) == 0
    engine = sa.create_engine(f"sqlite:///{database}")
    assert count_rows(engine, "bookkeeping_records") == 0
    engine.dispose()


def test_option_values_are_case_insensitive(
    postgres_url: str,
    pg_engine: Engine,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_records(pg_engine, 200, 2, seed=3)
    monkeypatch.setenv("RECORDS_DATABASE_URL", postgres_url)
    assert main(["export", "--format", "CSV", "--money", "DOLLARS", "--compression", "GZIP"]) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    path = Path(printed.out.split("\t")[0])
    assert path.name.endswith(".csv.gz")
    with gzip.open(path, "rt", encoding="utf-8") as text:
        header = text.readline().strip().split(",")
    assert header[-1] == "profit"


@pytest.mark.parametrize(
    ("args", "field", "valid"),
    [
        (["--format", "XML"], "format", "csv, ndjson, json, xlsx, parquet"),
        (["--money", "Euros"], "money", "cents, dollars"),
        (["--compression", "BROTLI"], "compression", "none, gzip, zstd"),
    ],
)
def test_unknown_choice_is_one_line_exit_2_before_any_query(
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    field: str,
    valid: str,
) -> None:
    """The database is unreachable: had the CLI queried it, the error would say so."""
    monkeypatch.setenv("RECORDS_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(SystemExit) as exited:
        main(["export", *args])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith(f"error: {field}: unknown value") and valid in error
    assert files_under(dagster_env) == []


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real tmpfs mounted on `folder` (the tests run as root, as CI does)."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def used_bytes(folder: Path) -> int:
    usage = shutil.disk_usage(folder)
    return usage.total - usage.free


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small_tmpfs", "256k") as folder:
        yield folder


@pytest.mark.slow
def test_sqlite_sort_with_a_full_temp_folder_exit_1_leaves_nothing(
    tmp_path: Path, dagster_env: Path, small_tmpfs: Path
) -> None:
    """SQLite's sorter spills to SQLITE_TMPDIR; when that fills up the export fails in one
    line, leaves no export and no temporary file, and succeeds once there is room."""
    path = tmp_path / "records.db"
    env = {"RECORDS_DATABASE_URL": f"sqlite:///{path}"}
    assert run_cli("seed", "--records", "20000", "--accounts", "2", env=env).returncode == 0
    result = run_cli("export", env={**env, "SQLITE_TMPDIR": str(small_tmpfs)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: export failed:"), result.stderr
    assert "SQLite's temporary folder is full" in lines[0]
    assert files_under(dagster_env) == []
    assert list(small_tmpfs.iterdir()) == []
    result = run_cli("export", env=env)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split("\t")[1].split()[0]) > 19_000


@pytest.mark.slow
def test_sqlite_export_killed_while_sorting_leaves_nothing(
    tmp_path: Path, dagster_env: Path
) -> None:
    """SIGKILL while SQLite's sorter holds spilled runs: no export, and the runs' space comes
    back (SQLite unlinks its temporary files as it opens them)."""
    path = tmp_path / "records.db"
    env = {"RECORDS_DATABASE_URL": f"sqlite:///{path}"}
    assert run_cli("seed", "--records", "60000", "--accounts", "2", env=env).returncode == 0
    with tmpfs(tmp_path / "sort_tmpfs", "256m") as folder:
        export = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "export"],
            env={**os.environ, **env, "SQLITE_TMPDIR": str(folder)},
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while used_bytes(folder) == 0 and export.poll() is None:
            assert time.monotonic() < deadline, "the sort never spilled"
            time.sleep(0.005)
        spilled = used_bytes(folder)
        export.send_signal(signal.SIGKILL)
        assert export.wait(timeout=30) == -signal.SIGKILL
        assert spilled > 0 and used_bytes(folder) == 0
        assert list(folder.iterdir()) == []
    assert [p for p in files_under(dagster_env) if not p.name.startswith(".")] == []


def test_every_bad_option_is_one_line_each_exit_2(
    dagster_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """All at once, each field once, before any query (the database is unreachable)."""
    monkeypatch.setenv("RECORDS_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(SystemExit) as exited:
        main(["export", "--format", "xlsx", "--from", "2026-11-31", "--bom", "--money", "euro"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: sale_date_from: '2026-11-31' is not a real date",
        "error: money: unknown value 'euro' (valid: cents, dollars)",
        "error: bom: applies to csv only, not xlsx",
    ]
    assert files_under(dagster_env) == []
