"""A crash at any step of publishing leaves a file and a manifest that agree.

A real export runs in a subprocess into a folder that holds a previous export (file and
manifest) and SIGKILLs itself just before, then just after, each rename or unlink it makes
in that folder (`crashing_export`). After every crash the file is the old or the new one,
and a manifest, when there is one, matches it: sha256, size and rows. One later export
into the folder then leaves nothing but its file and manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest
from sqlalchemy.engine import Engine

from record_exports.daily import DailySelection, export_days
from record_exports.daily_layout import LOCKS_FOLDER, daily_path
from record_exports.database import DatabaseTarget
from record_exports.engine import run_export
from record_exports.manifest import manifest_path
from record_exports.params import ExportFormat, parse_export_params
from tests.factories import add_account, insert_records, record
from tests.record_exports.exporting import url_of

REPO_ROOT = Path(__file__).resolve().parents[2]
PHASES = ("before", "after")
# Every state a crash may leave a file in (see record_exports/manifest.py).
ALLOWED = {"old with manifest", "old alone", "new alone", "new with manifest"}


def run_crashing(job: dict[str, Any], kill_at: int, phase: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.record_exports.crashing_export",
            json.dumps({**job, "kill_at": kill_at, "phase": phase}),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )


def steps_of(job: dict[str, Any]) -> list[str]:
    """The renames and unlinks a whole export makes under the watched folder, in order."""
    result = run_crashing(job, 0, "before")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def content(path: Path) -> Any:
    """What a file holds, as values: a workbook's bytes differ by its creation time."""
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        return [list(book[name].iter_rows(values_only=True)) for name in book.sheetnames]
    return path.read_bytes()


def rows_in(path: Path) -> int:
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        return sum(len(list(book[name].iter_rows())) - 1 for name in book.sheetnames)
    return pl.read_csv(path, infer_schema=False).height


def state_of(path: Path, old: Any, new: Any) -> str:
    """Which allowed state `path` is in; fails if its manifest does not describe it."""
    data = path.read_bytes()
    held = content(path)
    assert held in (old, new), f"{path.name} is neither the old nor the new file"
    which = "old" if held == old else "new"
    manifest_file = manifest_path(path)
    if not manifest_file.exists():
        return f"{which} alone"
    manifest = json.loads(manifest_file.read_text())
    assert (manifest["bytes"], manifest["sha256"]) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    ), f"{manifest_file.name} describes another file than {path.name} ({which})"
    assert manifest["row_count"] == rows_in(path)
    return f"{which} with manifest"


def only_finished_files(folder: Path, finals: list[Path]) -> None:
    """The folder holds the files and their manifests, nothing else (no partial, no scratch)."""
    expected = sorted([p.name for p in finals] + [manifest_path(p).name for p in finals])
    assert sorted(p.name for p in folder.iterdir()) == expected
    for final in finals:
        manifest = json.loads(manifest_path(final).read_text())
        assert manifest["sha256"] == hashlib.sha256(final.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["csv", "xlsx"])
def test_crash_at_each_publish_step_of_an_export(
    pg_records: DatabaseTarget, tmp_path: Path, export_format: str
) -> None:
    old_params = {"format": export_format, "columns": ["id", "profit_cents"]}
    new_params = {"format": export_format}
    previous = tmp_path / "previous"
    final_name = f"records.{export_format}"
    run_export(pg_records, parse_export_params(old_params), previous / final_name)
    old = content(previous / final_name)

    def job_in(folder: Path) -> dict[str, Any]:
        shutil.copytree(previous, folder)
        return {
            "kind": "export",
            "url": url_of(pg_records),
            "params": new_params,
            "destination": str(folder / final_name),
            "watched": str(folder),
        }

    counted = tmp_path / "counted"
    steps = steps_of(job_in(counted))
    new = content(counted / final_name)
    assert new != old
    # The order that keeps them consistent: old manifest out, new file in, new manifest in.
    publishing = [step for step in steps if not step.startswith("unlink .")]
    assert publishing == [
        f"unlink {final_name}.manifest.json",
        f"replace .{final_name}.partial-* -> {final_name}",
        f"replace .{final_name}.manifest.json.partial-* -> {final_name}.manifest.json",
    ]

    seen = set()
    for number, step in enumerate(steps, start=1):
        for phase in PHASES:
            folder = tmp_path / f"step-{number}-{phase}"
            result = run_crashing(job_in(folder), number, phase)
            assert result.returncode == -signal.SIGKILL, (step, phase, result.stderr)
            seen.add(state_of(folder / final_name, old, new))

            run_export(pg_records, parse_export_params(new_params), folder / final_name)
            only_finished_files(folder, [folder / final_name])
            assert content(folder / final_name) == new
    assert seen == ALLOWED


@pytest.mark.slow
def test_crash_at_each_publish_step_of_daily_files(
    pg_engine: Engine, pg_target: DatabaseTarget, tmp_path: Path
) -> None:
    """The same for an account-day's CSV and Excel files (the Excel one from the template
    the run writes in the daily root first)."""
    account = add_account(pg_engine, "ACC1")
    day = dt.date(2026, 3, 1)  # records 0, 3, 6, ... of `record`
    insert_records(pg_engine, [record(account, number) for number in range(30)])
    target = pg_target
    formats = (ExportFormat.CSV, ExportFormat.XLSX)
    previous = tmp_path / "previous"
    list(export_days(target, DailySelection(day, day, formats, ("ACC1",)), previous))
    paths = {fmt: daily_path(previous, "ACC1", day, fmt.extension) for fmt in formats}
    old = {fmt: content(path) for fmt, path in paths.items()}
    insert_records(pg_engine, [record(account, number) for number in range(30, 60)])

    def job_in(root: Path) -> dict[str, Any]:
        shutil.copytree(previous, root)
        return {
            "kind": "daily",
            "url": url_of(target),
            "day": day.isoformat(),
            "account_code": "ACC1",
            "formats": [fmt.value for fmt in formats],
            "root": str(root),
            "watched": str(root),
        }

    def files_in(root: Path) -> dict[ExportFormat, Path]:
        return {fmt: daily_path(root, "ACC1", day, fmt.extension) for fmt in formats}

    counted = tmp_path / "counted"
    steps = steps_of(job_in(counted))
    new = {fmt: content(path) for fmt, path in files_in(counted).items()}
    assert all(new[fmt] != old[fmt] for fmt in formats)
    assert len(steps) >= 2 * 5  # per file: unlink manifest, two renames, two temp clean-ups

    seen: dict[ExportFormat, set[str]] = {fmt: set() for fmt in formats}
    for number, step in enumerate(steps, start=1):
        for phase in PHASES:
            root = tmp_path / f"step-{number}-{phase}"
            result = run_crashing(job_in(root), number, phase)
            assert result.returncode == -signal.SIGKILL, (step, phase, result.stderr)
            files = files_in(root)
            for fmt, path in files.items():
                seen[fmt].add(state_of(path, old[fmt], new[fmt]))

            selection = DailySelection(day, day, formats, ("ACC1",))
            list(export_days(target, selection, root))
            only_finished_files(files[ExportFormat.CSV].parent, list(files.values()))
            assert sorted(p.name for p in root.iterdir()) == sorted([LOCKS_FOLDER, "ACC1"])
            assert all(content(path) == new[fmt] for fmt, path in files.items())
    assert seen == {fmt: ALLOWED for fmt in formats}
