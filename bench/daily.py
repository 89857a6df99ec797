"""The "daily" section of `make bench`: daily exports at real scale, side by side with single
exports of the same records, each a Dagster run in its own process with its own instance.

- year: 1M records over 20 accounts × 365 days, CSV + Excel. `dagster asset materialize
  --partition-range` of the whole year (one run, the way a backfill runs) against two
  `record-exports export` runs of the same records (one CSV, one Excel). Target: ours
  ≤ 1.5 × (CSV + Excel) + 20 s.
- nightly: 1,000 accounts, one day of about 3,000 records. The schedule's tick is evaluated
  for 02:00 the next day, then its run request runs in a new process (as the daemon launches
  it); the figure is from the start of the tick to the mtime of the last file. Target ≤ 30 s.
  Not included: the daemon's wait before it dequeues the run (a few seconds).
- memory: peak RSS of the run's process for a year against a month. Target ≤ 1.2.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from bench.database import ensure_seeded
from bench.peak import PeakPoller
from pipelines.definitions import build_definitions
from pipelines.local_instance import ensure_local_instance
from record_exports.database import DatabaseTarget
from record_exports.seed import LAST_SALE_DATE, SALE_DAYS

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"
YEAR_RECORDS, YEAR_ACCOUNTS = 1_000_000, 20
NIGHTLY_ACCOUNTS, NIGHTLY_RECORDS_PER_DAY = 1_000, 3_000
FIRST_DAY = LAST_SALE_DATE - dt.timedelta(days=SALE_DAYS - 1)
MONTH_FIRST_DAY = LAST_SALE_DATE - dt.timedelta(days=30)


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # user + system of the process and its children (not the database's)
    files: int = 0
    last_file_at: float = 0.0  # mtime of the newest file written


def _environment(target: DatabaseTarget, home: Path, exports: Path) -> dict[str, str]:
    ensure_local_instance(home)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "RECORDS_DATABASE_URL": target.url.render_as_string(hide_password=False),
        "EXPORTS_DIR": str(exports),
        "EXPORTS_TIMEZONE": "UTC",
        "EXPORTS_FIRST_DAY": FIRST_DAY.isoformat(),
    }


def _files(exports: Path) -> list[Path]:
    return [p for p in (exports / "daily").rglob("*") if p.is_file() and ".locks" not in p.parts]


def _run(command: list[str], env: dict[str, str], log: Path) -> Measured:
    started = time.time()
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
        peak = PeakPoller(process.pid, tree=True, interval=0.05)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak_mb = peak.stop()
    seconds = time.time() - started
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}); see {log}")
    return Measured(seconds, peak_mb, usage.ru_utime + usage.ru_stime)


def materialize(
    target: DatabaseTarget, work: Path, first: dt.date, last: dt.date, name: str
) -> Measured:
    """`dagster asset materialize` of the days first..last: one run, own process and instance."""
    exports = work / f"{name}-exports"
    env = _environment(target, work / f"{name}-home", exports)
    selection = (
        ["--partition", first.isoformat()]
        if first == last
        else [
            "--partition-range",
            f"{first.isoformat()}...{last.isoformat()}",
        ]
    )
    measured = _run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "pipelines.definitions",
            "-a",
            "defs",
            "-d",
            str(REPO_ROOT),
            "--select",
            "daily_account_exports",
            *selection,
        ],
        env,
        work / f"{name}.log",
    )
    files = _files(exports)
    measured.files = len([p for p in files if not p.name.endswith(".manifest.json")])
    measured.last_file_at = max((p.stat().st_mtime for p in files), default=0.0)
    return measured


def single_export(target: DatabaseTarget, work: Path, export_format: str) -> Measured:
    """One `record-exports export` of every record: the reference."""
    env = _environment(target, work / f"single-{export_format}-home", work / "single")
    return _run(
        [
            str(BIN / "record-exports"),
            "export",
            "--format",
            export_format,
            "--output",
            str(work / f"single.{export_format}"),
        ],
        env,
        work / f"single-{export_format}.log",
    )


def nightly_partition(day: dt.date) -> tuple[str, float]:
    """The partition the schedule requests at 02:00 after `day`, and seconds the tick took."""
    started = time.monotonic()
    defs = build_definitions(timezone="UTC", first_day=FIRST_DAY)
    schedule = defs.resolve_schedule_def("nightly_exports")
    tick = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(2), dt.UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key is not None
    return request.partition_key, time.monotonic() - started


def run(quiet: Callable[[], None]) -> list[list[str]]:
    """Measure the three targets (`quiet` waits for an idle machine before each); returns the
    table rows (label, figures, target, verdict)."""
    year_db = ensure_seeded(YEAR_RECORDS, accounts=YEAR_ACCOUNTS)
    nightly_db = ensure_seeded(NIGHTLY_RECORDS_PER_DAY * SALE_DAYS, accounts=NIGHTLY_ACCOUNTS)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="record-exports-daily-bench-") as folder:
        work = Path(folder)
        print("== daily: single exports (csv, xlsx) of 1M records", flush=True)
        quiet()
        csv = single_export(year_db, work, "csv")
        quiet()
        xlsx = single_export(year_db, work, "xlsx")
        print("== daily: a year's backfill, 20 accounts", flush=True)
        quiet()
        year = materialize(year_db, work, FIRST_DAY, LAST_SALE_DATE, "year")
        reference = csv.seconds + xlsx.seconds
        bound = 1.5 * reference + 20
        reference_cpu = csv.cpu_seconds + xlsx.cpu_seconds
        rows.append(
            [
                "year backfill, 1M records, 20 accounts x 365 days, csv + xlsx",
                f"{year.seconds:.1f} s, {year.cpu_seconds:.0f} CPU-s ({year.files:,} files)",
                f"single csv {csv.seconds:.1f} s + xlsx {xlsx.seconds:.1f} s = {reference:.1f} s, "
                f"{reference_cpu:.0f} CPU-s",
                f"{year.seconds / reference:.2f} (CPU {year.cpu_seconds / reference_cpu:.2f})",
                f"<= 1.5 x ref + 20 s = {bound:.0f} s",
                "yes" if year.seconds <= bound else "NO",
            ]
        )
        print("== daily: a month's backfill (memory)", flush=True)
        quiet()
        month = materialize(year_db, work, MONTH_FIRST_DAY, LAST_SALE_DATE, "month")
        ratio = year.peak_rss_mb / month.peak_rss_mb
        rows.append(
            [
                "peak RSS of the run, year vs month",
                f"year {year.peak_rss_mb:.0f} MB",
                f"month {month.peak_rss_mb:.0f} MB ({month.seconds:.1f} s)",
                f"{ratio:.2f}",
                "<= 1.20",
                "yes" if ratio <= 1.2 else "NO",
            ]
        )
        print("== daily: nightly run, 1,000 accounts", flush=True)
        quiet()
        started = time.time()
        partition, tick_seconds = nightly_partition(LAST_SALE_DATE)
        day = dt.date.fromisoformat(partition)
        nightly = materialize(nightly_db, work, day, day, "nightly")
        last_file = nightly.last_file_at - started
        rows.append(
            [
                f"nightly, 1,000 accounts, {partition}",
                f"{last_file:.1f} s tick to last file ({nightly.files:,} files)",
                f"tick {tick_seconds:.1f} s, run process {nightly.seconds:.1f} s",
                "-",
                "<= 30 s",
                "yes" if last_file <= 30 else "NO",
            ]
        )
    return rows


HEADER = ["daily", "ours", "reference", "ratio", "target", "met"]
