"""What the daily integrity check costs (`python -m bench.integrity_cost [RECORDS]`): a year of
daily files (20 accounts × 365 days, CSV + Excel, as bench/daily.py's year backfill) written
by `export_days`, then checked by `check_daily_files` as the asset's check does at the end of
a run, each timed. Uses the bench database of that size (`bench.database`, seeded once)."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from bench.database import ensure_seeded
from record_exports.daily import DailySelection, export_days
from record_exports.database import create_engine_for
from record_exports.integrity import DailyFileToCheck, check_daily_files
from record_exports.params import ExportFormat
from record_exports.seed import LAST_SALE_DATE, SALE_DAYS

ACCOUNTS = 20


def main(records: int) -> None:
    target = ensure_seeded(records, accounts=ACCOUNTS)
    first = LAST_SALE_DATE - dt.timedelta(days=SALE_DAYS - 1)
    formats = (ExportFormat.CSV, ExportFormat.XLSX)
    with tempfile.TemporaryDirectory(prefix="integrity-cost-") as folder:
        started = time.monotonic()
        outcomes = list(
            export_days(target, DailySelection(first, LAST_SALE_DATE, formats), Path(folder))
        )
        export_seconds = time.monotonic() - started
        files = [
            DailyFileToCheck(f.account_code, f.day, ExportFormat(f.format), f.path)
            for outcome in outcomes
            for f in outcome.files
        ]
        engine = create_engine_for(target)
        started, cpu = time.monotonic(), time.process_time()
        checks = check_daily_files(engine, files, first, LAST_SALE_DATE)
        check_seconds, check_cpu = time.monotonic() - started, time.process_time() - cpu
        engine.dispose()
    failed = sum(not check.passed for check in checks)
    rows = sum(check.database.rows for check in checks) // len(formats)
    print(
        f"{records:,} records ({rows:,} live), {len(files):,} files: export_days "
        f"{export_seconds:.1f} s, check {check_seconds:.1f} s ({check_cpu:.1f} CPU-s, "
        f"{1000 * check_seconds / len(files):.2f} ms per file, "
        f"{check_seconds / export_seconds:.0%} of the export); failed: {failed}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
