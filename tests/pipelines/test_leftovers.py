"""Nothing left behind: `record-exports export` killed mid-write, racing another export, or
out of disk space leaves, after one later export, only finished files and their manifests,
in the output folder and in the system temp folder (TMPDIR, a test folder here).

Each CLI run gets its own DAGSTER_HOME, so a killed run's `records_database` pool slot
(slot recovery is not these tests' subject) never makes the next one wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from record_exports.atomic import PARTIAL_NAME
from record_exports.database import create_engine_for, parse_database_url
from record_exports.manifest import manifest_path
from record_exports.schema import create_schema
from record_exports.seed import seed_records
from tests.factories import libpq_url
from tests.pipelines.test_cli import REPO_ROOT, run_cli, tmpfs
from tests.postgres import ADMIN_URL, create_database, drop_database

# Enough that writing the file takes a while (36 MB of CSV, 25 MB of Excel).
RECORDS = 200_000
WAIT_SECONDS = 180


@pytest.fixture(scope="module")
def records_url() -> Iterator[str]:
    """A PostgreSQL database with RECORDS seeded records, shared by this module's tests
    (which only read it), dropped at the end."""
    name, url = create_database(ADMIN_URL.rsplit("/", 1)[0])
    try:
        engine = create_engine_for(parse_database_url(url))
        try:
            create_schema(engine)
            seed_records(engine, RECORDS, 5, seed=11)
        finally:
            engine.dispose()
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def system_temp(tmp_path: Path) -> Path:
    folder = tmp_path / "system-temp"
    folder.mkdir()
    return folder


def export_to(
    path: Path, export_format: str, env: dict[str, str], *options: str
) -> subprocess.CompletedProcess[str]:
    """`record-exports export --format F [options] --output PATH` in its own process."""
    return run_cli("export", "--format", export_format, *options, "--output", str(path), env=env)


def cli_env(tmp_path: Path, url: str, system_temp: Path) -> dict[str, str]:
    """The environment of one CLI run: its own Dagster instance, TMPDIR the test's folder."""
    home = tmp_path / f"dagster-home-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        "RECORDS_DATABASE_URL": url,
        "DAGSTER_HOME": str(home),
        "EXPORTS_DIR": str(tmp_path / "exports"),
        "TMPDIR": str(system_temp),
    }


def start_export(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "export", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    """Poll `condition` while `process` runs; fail if it ends first or never comes."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert process.poll() is None, f"the export ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.002)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=60)


def partials(folder: Path) -> list[Path]:
    """The partial files in `folder` (not their scratch folders)."""
    return sorted(p for p in folder.iterdir() if PARTIAL_NAME.fullmatch(p.name) and not p.is_dir())


def has_bytes(folder: Path, pattern: str) -> Callable[[], bool]:
    """Whether a file of `folder` matching `pattern` (or one in it, for a folder) has data."""

    def check() -> bool:
        for path in folder.glob(pattern):
            try:
                files = list(path.iterdir()) if path.is_dir() else [path]
                if any(f.stat().st_size > 0 for f in files):
                    return True
            except FileNotFoundError:
                continue  # renamed or removed while looking
        return False

    return check


def finished_only(folder: Path, names: list[str]) -> None:
    """`folder` holds the files `names` and their manifests, each describing its file."""
    expected = sorted(names + [name + ".manifest.json" for name in names])
    assert sorted(p.name for p in folder.iterdir()) == expected
    for name in names:
        data = (folder / name).read_bytes()
        manifest = json.loads(manifest_path(folder / name).read_text())
        assert (manifest["bytes"], manifest["sha256"]) == (
            len(data),
            hashlib.sha256(data).hexdigest(),
        )


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["csv", "xlsx"])
def test_killed_export_leaves_a_partial_the_next_export_sweeps(
    records_url: str, tmp_path: Path, system_temp: Path, export_format: str
) -> None:
    out = tmp_path / "out"
    name = f"records.{export_format}"
    env = cli_env(tmp_path, records_url, system_temp)
    export = start_export(env, "--format", export_format, "--output", str(out / name))
    try:
        # Mid-write: the CSV partial has bytes; the workbook's row data (in its scratch
        # folder: xlsxwriter writes the .xlsx itself only at the end) has bytes.
        pattern = f".{name}.partial-*" + (".d" if export_format == "xlsx" else "")
        wait_until(has_bytes(out, pattern), export, f"{pattern} being written")
        export.send_signal(signal.SIGKILL)
        assert export.wait(timeout=60) == -signal.SIGKILL
    finally:
        stop(export)

    (partial,) = partials(out)
    assert partial.name.startswith(f".{name}.partial-") and not (out / name).exists()
    if export_format == "csv":
        assert [p.name for p in out.iterdir()] == [partial.name]
    else:
        scratch = out / f"{partial.name}.d"
        assert sorted(p.name for p in out.iterdir()) == sorted([partial.name, scratch.name])
        assert any(f.stat().st_size > 0 for f in scratch.iterdir())
    assert list(system_temp.iterdir()) == []  # the scratch was never in the system folder

    result = export_to(out / name, export_format, cli_env(tmp_path, records_url, system_temp))

    assert result.returncode == 0, result.stderr
    finished_only(out, [name])
    assert list(system_temp.iterdir()) == []


@pytest.mark.slow
def test_an_export_never_sweeps_a_live_exports_partial(
    records_url: str, tmp_path: Path, system_temp: Path
) -> None:
    """A PostgreSQL export stopped at its query (the table locked), its partial created, is
    live: an export of a SQLite database into the same folder sweeps the folder and leaves
    it; released, the first export completes."""
    out = tmp_path / "out"
    sqlite_url = f"sqlite:///{tmp_path / 'records.db'}"
    sqlite_env = cli_env(tmp_path, sqlite_url, system_temp)
    assert run_cli("seed", "--records", "1000", env=sqlite_env).returncode == 0
    lock = psycopg.connect(libpq_url(records_url))
    try:
        lock.execute("LOCK TABLE bookkeeping_records IN ACCESS EXCLUSIVE MODE")
        slow = start_export(
            cli_env(tmp_path, records_url, system_temp), "--output", str(out / "slow.csv")
        )
        try:
            wait_until(lambda: out.exists() and partials(out) != [], slow, "the slow partial")
            (live,) = partials(out)
            inode = live.stat().st_ino

            result = run_cli("export", "--output", str(out / "fast.csv"), env=sqlite_env)

            assert result.returncode == 0, result.stderr
            assert partials(out) == [live] and live.stat().st_ino == inode
            lock.commit()
            assert slow.wait(timeout=WAIT_SECONDS) == 0
        finally:
            stop(slow)
    finally:
        lock.close()
    finished_only(out, ["fast.csv", "slow.csv"])
    assert list(system_temp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["csv", "xlsx"])
def test_full_disk_fails_in_one_line_and_keeps_the_previous_export(
    records_url: str, tmp_path: Path, system_temp: Path, export_format: str
) -> None:
    """The output folder is a 2 MB tmpfs: a small export fits; the whole table does not. It
    fails with one line naming the cause, exit 1, and leaves the previous file and its
    manifest as they were: no partial, no Excel scratch, no stale manifest."""
    name = f"records.{export_format}"
    with tmpfs(tmp_path / "small-disk", "2m") as out:
        small = ["--account", "ACC1", "--from", "2026-11-28", "--to", "2026-11-28"]
        env = cli_env(tmp_path, records_url, system_temp)
        first = export_to(out / name, export_format, env, *small)
        assert first.returncode == 0, first.stderr
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        assert sorted(before) == [name, f"{name}.manifest.json"]

        result = export_to(out / name, export_format, cli_env(tmp_path, records_url, system_temp))

        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: export failed:"), result.stderr
        assert "No space left on device" in lines[0]
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        finished_only(out, [name])
    assert list(system_temp.iterdir()) == []
