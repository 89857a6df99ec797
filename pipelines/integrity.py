"""The integrity checks in Dagster: thin wrappers around `record_exports.integrity`.

- `daily_account_exports` declares the asset check `files_match_database` (blocking) and
  evaluates it in its own step, after the last day of the run is written: every file of the
  run is compared with one GROUP BY (account, day) of the database. Blocking, so a mismatch
  fails the run like any other failed export: the nightly run shows red and alerts fire,
  while the files stay (they are complete; only their content is in question).
- A request run (`export_records` with the `export_request_id` tag) checks its file inside
  the `export` step, after the file and manifest are in place and before the request row is
  marked succeeded: a mismatch fails the step and marks the row failed with the numbers.
  Other runs (the CLI's, the Launchpad's) skip it, so they keep their speed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import dagster as dg

from record_exports.integrity import DailyCheckSummary, FileCheck

DAILY_CHECK_NAME = "files_match_database"
SHOWN_DIFFERENCES = 50


def daily_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        DAILY_CHECK_NAME,
        asset=asset,
        blocking=True,
        description="After each run: the database re-counts the rows and re-sums every money "
        "column of each account-day written, and each file's manifest and the file read back "
        "must agree (also bytes and sha256 against the manifest). Account-days changed since "
        "the export read them are skipped: their re-export is pending.",
    )


def differences_table(failed: Sequence[FileCheck]) -> dg.MarkdownMetadataValue:
    lines = ["| file | what | database | manifest | file read back |", "|---|---|---|---|---|"]
    shown = [d for check in failed for d in check.differences]
    for difference in shown[:SHOWN_DIFFERENCES]:
        values = (difference.database, difference.manifest, difference.file)
        cells = ["" if value is None else str(value) for value in values]
        lines.append(f"| {difference.path} | {difference.what} | {' | '.join(cells)} |")
    if len(shown) > SHOWN_DIFFERENCES:
        lines.append(f"\n{len(shown) - SHOWN_DIFFERENCES} more differences not shown")
    return dg.MetadataValue.md("\n".join(lines))


def failure_summary(failed: Sequence[FileCheck], checked: int, limit: int = 3) -> str:
    """`2 of 40 files differ from the database: ACC1_2026-03-01.csv: rows: database 6, file 5;
    ...`: one line, the first few differences."""
    shown = "; ".join(d.text() for check in failed for d in check.differences[:2])
    return f"{len(failed)} of {checked} files differ from the database: " + "; ".join(
        shown.split("; ")[:limit]
    )


def check_result(
    summary: DailyCheckSummary, started: float, asset_key: dg.AssetKey
) -> dg.AssetCheckResult:
    failed, changed = summary.failed, summary.changed
    description = (
        failure_summary(failed, summary.checked)
        if failed
        else f"all {summary.checked} files agree with the database"
        + (f" ({len(changed)} changed since, re-export pending)" if changed else "")
    )
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=DAILY_CHECK_NAME,
        passed=not failed,
        description=description,
        metadata={
            "files_checked": dg.MetadataValue.int(summary.checked),
            "files_failed": dg.MetadataValue.int(len(failed)),
            "files_changed_since": dg.MetadataValue.int(len(changed)),
            "rows_in_database": dg.MetadataValue.int(summary.rows_in_database),
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
            "differences": differences_table(failed),
        },
    )


def request_check_metadata(check: FileCheck, seconds: float) -> dict[str, dg.MetadataValue]:
    """What a request run's output says about its check."""
    state = "changed since the export" if check.changed else "passed"
    return {
        "integrity": dg.MetadataValue.text(state),
        "integrity_rows_in_database": dg.MetadataValue.int(check.database.rows),
        "integrity_seconds": dg.MetadataValue.float(round(seconds, 3)),
    }


def request_check_failure(check: FileCheck) -> dg.Failure:
    """The step's failure for a request file that differs; its first line has the numbers
    (what the request row's `error` shows)."""
    return dg.Failure(
        description=f"integrity check failed: {failure_summary([check], 1, limit=4)}",
        metadata={"differences": differences_table([check])},
    )
