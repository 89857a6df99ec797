"""Bad input on the command line is one line and exit 2 before any query and before any
Dagster run: a malformed RECORDS_DATABASE_URL (its port included) and an `--output` no file
can be written at. `--output` naming a folder writes the export's default file name in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import Engine

from pipelines.cli import main
from record_exports.seed import seed_records

REPO_ROOT = Path(__file__).resolve().parents[2]
# Nothing listens there: had the CLI queried the database, the error would say "unreachable".
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"


def dagster_runs() -> list[dg.DagsterRun]:
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_runs())


def exit_code_and_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int | str | None, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    return exited.value.code, capsys.readouterr().err


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg://u:hunter2@h:abc/db", "its port is not a number"),
        ("postgresql://u:hunter2@127.0.0.1:70000/db", "port 70000 is out of range (1-65535)"),
        ("postgresql+psycopg//u:hunter2@h/db", "not a URL"),
    ],
)
@pytest.mark.parametrize("command", ["export", "request", "init-db"])
def test_malformed_database_url_is_one_line_exit_2(
    command: str,
    url: str,
    says: str,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", url)
    code, error = exit_code_and_error([command], capsys)
    assert code == 2
    assert error.count("\n") == 1, error
    assert error.startswith("error: RECORDS_DATABASE_URL is malformed: ") and says in error
    assert "hunter2" not in error
    assert dagster_runs() == []
    assert files_under(dagster_env) == []


@pytest.mark.slow
def test_non_numeric_port_prints_no_traceback(dagster_env: Path) -> None:
    """As a user runs it, in its own process: the ValueError of issue 10 is gone."""
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "export"],
        capture_output=True,
        text=True,
        env={**os.environ, "RECORDS_DATABASE_URL": "postgresql+psycopg://u:pw@h:abc/db"},
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: RECORDS_DATABASE_URL is malformed: its port is not a number; expected e.g. "
        "postgresql+psycopg://user:pass@host:5432/db or sqlite:///data/records.db"
    ]


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (the tests run as root, for whom permissions don't
    apply; a read-only mount stops root too)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_output_under_a_file_is_one_line_exit_2_before_any_query(
    tmp_path: Path,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", UNREACHABLE)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    code, error = exit_code_and_error(
        ["export", "--output", str(blocker / "deeper" / "x.csv")], capsys
    )
    assert code == 2
    assert error == f"error: --output: {blocker} is a file, not a folder\n"
    assert blocker.read_text() == "a file where a folder is needed"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["blocker", "dagster_home"]
    assert dagster_runs() == []


def test_output_in_a_read_only_folder_is_one_line_exit_2_before_any_query(
    read_only_folder: Path,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", UNREACHABLE)
    for output in (read_only_folder / "x.csv", read_only_folder / "new" / "x.csv"):
        code, error = exit_code_and_error(["export", "--output", str(output)], capsys)
        assert code == 2
        assert error == (
            f"error: --output: cannot write in {read_only_folder} (no permission or read-only)\n"
        )
    assert list(read_only_folder.iterdir()) == []
    assert dagster_runs() == []


def test_output_that_is_not_a_regular_file_is_exit_2(
    tmp_path: Path,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A named pipe (or a device such as /dev/null) is never replaced by an export."""
    monkeypatch.setenv("RECORDS_DATABASE_URL", UNREACHABLE)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    code, error = exit_code_and_error(["export", "--output", str(fifo)], capsys)
    assert code == 2
    assert error == f"error: --output: {fifo} exists and is not a regular file\n"
    assert dagster_runs() == []


def test_output_too_long_for_the_file_system_is_one_line_exit_2(
    tmp_path: Path,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", UNREACHABLE)
    output = str(tmp_path / ("x" * 40_000))
    code, error = exit_code_and_error(["export", "--output", output], capsys)
    assert (code, error) == (2, "error: --output: not a usable path: File name too long\n")
    assert dagster_runs() == []
    assert [p.name for p in tmp_path.iterdir()] == ["dagster_home"]


def test_bad_output_file_name_is_reported_with_the_other_options(
    tmp_path: Path,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECORDS_DATABASE_URL", UNREACHABLE)
    code, error = exit_code_and_error(
        ["export", "--output", str(tmp_path / "-rf.csv"), "--money", "euro"], capsys
    )
    assert code == 2
    lines = error.splitlines()
    assert lines[0].startswith("error: money: unknown value 'euro'")
    assert lines[1].startswith("error: output_name: '-rf.csv' is not a usable file name")
    assert dagster_runs() == []


def exported(capsys: pytest.CaptureFixture[str]) -> tuple[Path, int]:
    """The file path and row count `export` printed."""
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    path_text, rows_text, _run = printed.out.split("\t")
    return Path(path_text), int(rows_text.split()[0])


@pytest.mark.parametrize(
    ("make_folder", "argument"),
    [
        # an existing folder
        (True, lambda folder: str(folder)),
        # an existing folder whose name looks like a file's: still a folder
        (True, lambda folder: str(folder.with_name("dir.csv"))),
        # a path ending in "/" that does not exist yet: created, default name inside
        (False, lambda folder: str(folder / "new") + "/"),
    ],
    ids=["existing-folder", "folder-named-like-a-file", "new-folder-with-slash"],
)
def test_output_naming_a_folder_writes_the_default_name_inside(
    make_folder: bool,
    argument: Callable[[Path], str],
    postgres_url: str,
    pg_engine: Engine,
    tmp_path: Path,
    dagster_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_records(pg_engine, 50, 1, seed=2)
    monkeypatch.setenv("RECORDS_DATABASE_URL", postgres_url)
    folder = tmp_path / "chosen"
    if make_folder:
        folder.mkdir()
        folder.with_name("dir.csv").mkdir()
    raw = argument(folder)
    assert main(["export", "--output", raw]) == 0
    path, rows = exported(capsys)
    expected_folder = Path(raw.rstrip("/"))
    assert path.parent == expected_folder
    assert path.name.startswith("records_") and path.name.endswith(".csv")
    assert sorted(p.name for p in expected_folder.iterdir()) == [
        path.name,
        path.name + ".manifest.json",
    ]
    assert len(path.read_text().splitlines()) == rows + 1 > 1
    assert not folder.with_name("chosen.csv").exists()
    assert not folder.with_name("dir.csv.csv").exists()
