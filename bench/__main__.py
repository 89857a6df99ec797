"""`make bench`: the engine against its references, side by side, one table of ratios.

    python -m bench                      # 2M records, Excel on 200k, memory curve 1M/2M/4M,
                                         # SQLite on 1M
    python -m bench --sizes 200000       # a quick run on 200k records
    python -m bench --quick              # 200k records, Excel on 50k, no memory curve,
                                         # SQLite on 200k
    python -m bench --only-sqlite        # the SQLite section alone
    python -m bench --only-requests      # 300 export requests settled (bench/request_load.py)

Each measurement is a separate process, so its peak RSS (from `wait4`) is its own. Times
are wall-clock seconds; for the engine and the Python references, the time of the export
call itself (interpreter start-up and imports excluded), for `psql` the whole command.
Databases come from `bench.database` (one per size, seeded once, reused).
The SQLite section runs its measurements in turn, round after round (`--sqlite-rounds`),
so each meets the same load, and keeps the fastest of each.
Results go to stdout and to bench/.results/latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import daily as bench_daily
from bench import reference_sqlite, request_load
from bench.database import ensure_seeded, ensure_sqlite_seeded
from bench.peak import PeakPoller
from bench.reference_sql import SQL as REFERENCE_SQL
from record_exports.database import DatabaseTarget

RESULTS = Path(__file__).resolve().parent / ".results"
PYTHON = sys.executable
# COPY's fastest plan on this data: a sort instead of a walk of the (updated_at, id) index
# through a heap in random order, and no JIT. The bar is the better of the two plans.
TUNED_PGOPTIONS = "-c enable_indexscan=off -c jit=off"
COPY_SQL = f"COPY ({REFERENCE_SQL}) TO STDOUT (FORMAT csv, HEADER)"
JSON_SQL = f"SELECT row_to_json(t) FROM ({REFERENCE_SQL}) AS t"


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    rows: int | None = None
    sha256: str | None = None


def wait_for_quiet(limit: float = 30.0) -> None:
    """Other work on a 2-core machine distorts every figure; wait (a while) for it to end."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if psutil.cpu_percent(interval=1.0) < 15:
            return
    print("  (machine still busy; measuring anyway)", flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def measure(
    command: list[str], stdout: Path | None = None, env: dict[str, str] | None = None
) -> Run:
    """Run `command` in its own process; its wall time, peak RSS and JSON report (if any)."""
    wait_for_quiet()
    merged = {**os.environ, **(env or {})}
    started = time.perf_counter()
    with open(stdout, "wb") if stdout else tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, env=merged)
        polled = PeakPoller(process.pid)
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        polled_mb = polled.stop()
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"{command[:4]} failed with exit code {process.returncode}")
        report: dict[str, Any] = {}
        if stdout is None:
            out.seek(0)
            lines = out.read().decode().strip().splitlines()
            report = json.loads(lines[-1]) if lines else {}
    return Run(
        seconds=float(report.get("seconds", seconds)),
        # Python children report their own VmHWM; others (psql) are sampled.
        peak_rss_mb=float(report.get("peak_rss_mb", polled_mb)),
        rows=report.get("rows"),
        sha256=report.get("sha256"),
    )


def engine(target: DatabaseTarget, export_format: str, out: Path) -> Run:
    url = target.url.render_as_string(hide_password=False)
    return measure([PYTHON, "-m", "bench.engine_run", url, export_format, str(out)])


def row_reference(target: DatabaseTarget, export_format: str, out: Path) -> Run:
    return measure(
        [PYTHON, "-m", "bench.reference_rows", export_format, target.adbc_uri(), str(out)]
    )


def psql(target: DatabaseTarget, sql: str, out: Path, *, tuned: bool, unaligned: bool) -> Run:
    command = ["psql", "-X", "-q", target.adbc_uri(), "-v", "ON_ERROR_STOP=1"]
    if unaligned:
        command += ["-A", "-t"]
    command += ["-c", sql]
    env = {"PGOPTIONS": TUNED_PGOPTIONS} if tuned else {"PGOPTIONS": ""}
    run = measure(command, stdout=out, env=env)
    run.sha256 = _sha256(out)
    return run


@dataclass
class Row:
    label: str
    ours: Run
    reference: str
    theirs: Run | None
    target: str
    same_bytes: str = ""

    def cells(self) -> list[str]:
        rows = self.ours.rows or 0
        ratio = self.ours.seconds / self.theirs.seconds if self.theirs else None
        return [
            self.label,
            f"{rows:,}",
            f"{self.ours.seconds:.2f}",
            self.reference,
            f"{self.theirs.seconds:.2f}" if self.theirs else "-",
            f"{ratio:.2f}" if ratio is not None else "-",
            self.target,
            f"{rows / self.ours.seconds:,.0f}" if self.ours.seconds else "-",
            f"{self.ours.peak_rss_mb:.0f}",
            f"{self.theirs.peak_rss_mb:.0f}" if self.theirs else "-",
            self.same_bytes,
        ]


HEADER = [
    "format",
    "records",
    "ours s",
    "reference",
    "ref s",
    "ours/ref",
    "target",
    "rows/s",
    "our peak RSS MB",
    "ref peak RSS MB",
    "same bytes",
]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "| "
        + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        + " |"
        for line in [header, ["-" * width for width in widths], *rows]
    ]
    return "\n".join(lines)


def _repeat(times: int, measure_once: Any) -> Any:
    """The fastest of `times` runs (peak RSS: the largest seen)."""
    runs = [measure_once() for _ in range(times)]
    best = min(runs, key=lambda run: run.seconds)
    best.peak_rss_mb = max(run.peak_rss_mb for run in runs)
    return best


def _versions(target: DatabaseTarget) -> str:
    """The versions the figures depend on most (the ADBC driver's decoding speed varies
    twofold between releases: see bench/README.md)."""
    names = ("adbc-driver-postgresql", "adbc-driver-sqlite", "polars", "pyarrow", "xlsxwriter")
    installed = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)
    with psycopg.connect(target.adbc_uri()) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return f"{installed}, PostgreSQL {row[0] if row else '?'}"


def _sqlite_versions() -> str:
    """SQLite inside the ADBC driver (what the engine runs) and the `sqlite3` command line."""
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with adbc_sqlite.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()")
        row = cursor.fetchone()
    command = reference_sqlite.command(Path(":memory:"), "default")[0]
    cli = subprocess.run([command, "-version"], capture_output=True, text=True, check=True)
    engine_version = row[0] if row else "?"
    return f"SQLite {engine_version} in the ADBC driver, sqlite3 CLI {cli.stdout.split()[0]}"


def _alternate(rounds: int, measurements: dict[str, Callable[[], Run]]) -> dict[str, Run]:
    """Each measurement once per round, in turn, for `rounds` rounds, so all of them meet
    the same load; the fastest run of each (peak RSS: the largest seen)."""
    runs: dict[str, list[Run]] = {name: [] for name in measurements}
    for _ in range(rounds):
        for name, measure_once in measurements.items():
            runs[name].append(measure_once())
    best = {}
    for name, seen in runs.items():
        fastest = min(seen, key=lambda run: run.seconds)
        fastest.peak_rss_mb = max(run.peak_rss_mb for run in seen)
        best[name] = fastest
    return best


def sqlite_cli(database: Path, plan: str, out: Path) -> Run:
    return measure(reference_sqlite.command(database, plan), stdout=out)


SQLITE_HEADER = [
    "measure",
    "records",
    "SQLite",
    "reference",
    "ref",
    "ratio",
    "target",
    "our peak RSS MB",
    "ref peak RSS MB",
    "same bytes",
]


def _compare(
    measure_name: str, ours: Run, reference: str, theirs: Run, target: str, same: str = ""
) -> list[str]:
    """One row of the SQLite table: time, or peak RSS when `measure_name` says so."""
    if measure_name.endswith("RSS"):
        value, theirs_value, unit = ours.peak_rss_mb, theirs.peak_rss_mb, "MB"
    else:
        value, theirs_value, unit = ours.seconds, theirs.seconds, "s"
    return [
        measure_name,
        f"{ours.rows or 0:,}",
        f"{value:.2f} {unit}",
        reference,
        f"{theirs_value:.2f} {unit}",
        f"{value / theirs_value:.2f}",
        target,
        f"{ours.peak_rss_mb:.0f}",
        f"{theirs.peak_rss_mb:.0f}",
        same,
    ]


def sqlite_section(records: int, rounds: int, work: Path) -> list[list[str]]:
    """Exports from the embedded SQLite default against the `sqlite3` command line and
    against the same records exported from PostgreSQL (time and peak RSS)."""
    lite = ensure_sqlite_seeded(records)
    postgres = ensure_seeded(records)
    database = Path(lite.url.database or "")
    print(f"== SQLite, {records:,} records", flush=True)
    csv = _alternate(
        rounds,
        {
            "ours": lambda: engine(lite, "csv", work / "lite.csv"),
            "cli sorted": lambda: sqlite_cli(database, "sorted", work / "cli.csv"),
            "cli default": lambda: sqlite_cli(database, "default", work / "cli.csv"),
            "postgresql": lambda: engine(postgres, "csv", work / "pg.csv"),
        },
    )
    xlsx = _alternate(
        rounds,
        {
            "ours": lambda: engine(lite, "xlsx", work / "lite.xlsx"),
            "postgresql": lambda: engine(postgres, "xlsx", work / "pg.xlsx"),
        },
    )
    ours, postgresql = csv["ours"], csv["postgresql"]
    same = "yes" if ours.sha256 == postgresql.sha256 else "NO"
    best_cli = min(csv["cli sorted"], csv["cli default"], key=lambda run: run.seconds)
    lite_xlsx, pg_xlsx = xlsx["ours"], xlsx["postgresql"]
    rows = [
        _compare("csv time", ours, "sqlite3 CLI csv, best plan", best_cli, "<= 1.00"),
        _compare("csv time", ours, "sqlite3 CLI csv, sorted plan", csv["cli sorted"], "(info)"),
        _compare("csv time", ours, "sqlite3 CLI csv, default plan", csv["cli default"], "(info)"),
        _compare("csv time", ours, "our csv from PostgreSQL", postgresql, "(info)", same),
        _compare("csv peak RSS", ours, "our csv from PostgreSQL", postgresql, "<= 1.10", same),
        _compare("xlsx time", lite_xlsx, "our xlsx from PostgreSQL", pg_xlsx, "<= 1.20"),
        _compare("xlsx peak RSS", lite_xlsx, "our xlsx from PostgreSQL", pg_xlsx, "(info)"),
    ]
    for leftover in work.iterdir():
        leftover.unlink()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="records for the format table")
    parser.add_argument("--excel-records", type=int, help="records for the Excel comparison")
    parser.add_argument(
        "--curve", type=int, nargs="*", help="records for the CSV memory curve (none: skip)"
    )
    parser.add_argument("--excel-memory", type=int, help="records for the Excel peak-RSS check")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the fastest counts")
    parser.add_argument("--quick", action="store_true", help="200k records, no long references")
    parser.add_argument(
        "--skip-row-references", action="store_true", help="skip the slow row-at-a-time scripts"
    )
    parser.add_argument(
        "--sqlite", type=int, help="records for the SQLite section (0: skip; default 1M)"
    )
    parser.add_argument(
        "--sqlite-rounds", type=int, default=3, help="alternating rounds in the SQLite section"
    )
    parser.add_argument("--only-sqlite", action="store_true", help="run the SQLite section alone")
    parser.add_argument(
        "--only-requests",
        action="store_true",
        help="300 export requests (20 malformed) settled by the sensor and their runs",
    )
    parser.add_argument(
        "--daily",
        choices=["yes", "no", "only"],
        help="the daily section (default: yes, no on --quick)",
    )
    args = parser.parse_args(argv)
    if args.only_requests:
        request_load.run()
        return
    daily = args.daily or ("no" if args.quick else "yes")
    sqlite_records = (
        args.sqlite if args.sqlite is not None else (200_000 if args.quick else 1_000_000)
    )
    if args.only_sqlite:
        if not sqlite_records:
            parser.error("--only-sqlite needs --sqlite N with N > 0")
        main_sqlite_only(sqlite_records, args.sqlite_rounds)
        return
    if daily == "only":
        report_daily(bench_daily.run(wait_for_quiet))
        return
    sizes = args.sizes or ([200_000] if args.quick else [2_000_000])
    excel_records = args.excel_records or (50_000 if args.quick else 200_000)
    curve = (
        args.curve
        if args.curve is not None
        else ([] if args.quick else [1_000_000, 2_000_000, 4_000_000])
    )
    excel_memory = (
        args.excel_memory if args.excel_memory is not None else (0 if args.quick else 1_000_000)
    )

    for records in sorted(
        {*sizes, excel_records, *curve, *([excel_memory] if excel_memory else [])}
    ):
        ensure_seeded(records)

    rows: list[Row] = []
    repeat = args.repeat
    with tempfile.TemporaryDirectory(prefix="record-exports-bench-") as folder:
        work = Path(folder)
        for records in sizes:
            target = ensure_seeded(records)
            print(f"== {records:,} records", flush=True)

            ours_csv = _repeat(repeat, lambda t=target: engine(t, "csv", work / "ours.csv"))
            copy_default = _repeat(
                repeat,
                lambda t=target: psql(t, COPY_SQL, work / "copy.csv", tuned=False, unaligned=False),
            )
            copy_tuned = _repeat(
                repeat,
                lambda t=target: psql(t, COPY_SQL, work / "copy.csv", tuned=True, unaligned=False),
            )
            same = "yes" if ours_csv.sha256 == copy_tuned.sha256 == copy_default.sha256 else "NO"
            rows.append(
                Row(
                    "csv",
                    ours_csv,
                    "psql COPY csv, best plan",
                    min(copy_default, copy_tuned, key=lambda r: r.seconds),
                    "<= 1.00",
                    same,
                )
            )
            rows.append(
                Row(
                    "csv", ours_csv, "psql COPY csv, planner defaults", copy_default, "(info)", same
                )
            )

            ours_ndjson = _repeat(
                repeat, lambda t=target: engine(t, "ndjson", work / "ours.ndjson")
            )
            json_default = _repeat(
                repeat,
                lambda t=target: psql(
                    t, JSON_SQL, work / "ref.ndjson", tuned=False, unaligned=True
                ),
            )
            json_tuned = _repeat(
                repeat,
                lambda t=target: psql(t, JSON_SQL, work / "ref.ndjson", tuned=True, unaligned=True),
            )
            same = "yes" if ours_ndjson.sha256 == json_tuned.sha256 else "NO"
            rows.append(
                Row(
                    "ndjson",
                    ours_ndjson,
                    "psql row_to_json, best plan",
                    min(json_default, json_tuned, key=lambda r: r.seconds),
                    "<= 0.60",
                    same,
                )
            )

            if not (args.quick or args.skip_row_references):
                row_csv = row_reference(target, "csv", work / "rows.csv")
                rows.append(
                    Row("csv", ours_csv, "row-at-a-time csv.DictWriter", row_csv, "<= 0.25")
                )
                row_ndjson = row_reference(target, "ndjson", work / "rows.ndjson")
                rows.append(
                    Row("ndjson", ours_ndjson, "row-at-a-time json.dumps", row_ndjson, "(info)")
                )
            for export_format in ("json", "parquet"):
                run = _repeat(
                    repeat, lambda t=target, f=export_format: engine(t, f, work / f"ours.{f}")
                )
                rows.append(Row(export_format, run, "-", None, "(info)"))
            for leftover in work.iterdir():
                leftover.unlink()

        target = ensure_seeded(excel_records)
        print(f"== Excel, {excel_records:,} records", flush=True)
        ours_xlsx = _repeat(repeat, lambda: engine(target, "xlsx", work / "ours.xlsx"))
        cell_xlsx = row_reference(target, "xlsx", work / "cells.xlsx")
        rows.append(Row("xlsx", ours_xlsx, "xlsxwriter write() per cell", cell_xlsx, "<= 0.77"))
        if excel_memory:
            print(f"== Excel peak RSS, {excel_memory:,} records", flush=True)
            big = engine(ensure_seeded(excel_memory), "xlsx", work / "big.xlsx")
            rows.append(Row("xlsx", big, "-", None, "RSS <= 250 MB"))

        curve_rows: list[list[str]] = []
        base_rss: float | None = None
        for records in curve:
            print(f"== CSV memory, {records:,} records", flush=True)
            run = engine(ensure_seeded(records), "csv", work / "curve.csv")
            base_rss = base_rss or run.peak_rss_mb
            curve_rows.append(
                [
                    f"{records:,}",
                    f"{run.seconds:.2f}",
                    f"{(run.rows or 0) / run.seconds:,.0f}",
                    f"{run.peak_rss_mb:.0f}",
                    f"{100 * (run.peak_rss_mb / base_rss - 1):+.0f}%",
                ]
            )

    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    report = [
        f"# record-exports benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC ({machine})",
        "",
        _versions(ensure_seeded(sizes[0], log=False)),
        "",
        table(HEADER, [row.cells() for row in rows]),
    ]
    if sqlite_records:
        with tempfile.TemporaryDirectory(prefix="record-exports-bench-") as folder:
            sqlite_rows = sqlite_section(sqlite_records, args.sqlite_rounds, Path(folder))
        report += ["", _sqlite_versions(), "", table(SQLITE_HEADER, sqlite_rows)]
    if curve_rows:
        report += [
            "",
            "CSV memory curve (target: 4M peak <= 350 MB and <= 20% above 1M):",
            "",
            table(["records", "seconds", "rows/s", "peak RSS MB", "vs first"], curve_rows),
        ]
    if daily == "yes":
        report += ["", *daily_report(bench_daily.run(wait_for_quiet))]
    _publish(report)


def _publish(report: list[str]) -> None:
    text = "\n".join(report) + "\n"
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)


def main_sqlite_only(records: int, rounds: int) -> None:
    """`--only-sqlite`: the SQLite section alone, in its own report."""
    with tempfile.TemporaryDirectory(prefix="record-exports-bench-") as folder:
        rows = sqlite_section(records, rounds, Path(folder))
    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    _publish(
        [
            f"# record-exports SQLite benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC "
            f"({machine}, best of {rounds} alternating rounds)",
            "",
            _versions(ensure_seeded(records, log=False)),
            _sqlite_versions(),
            "",
            table(SQLITE_HEADER, rows),
        ]
    )


def daily_report(rows: list[list[str]]) -> list[str]:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return [
        f"Daily exports (load average before: {load}; see bench/daily.py for what is timed):",
        "",
        table(bench_daily.HEADER, rows),
    ]


def report_daily(rows: list[list[str]]) -> None:
    machine = f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    lines = [
        f"# record-exports daily benchmark, {when} ({machine})",
        "",
        *daily_report(rows),
    ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "daily.md").write_text(text)


if __name__ == "__main__":
    main()
