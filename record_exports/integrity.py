"""Integrity of finished exports: the database re-counts the rows and re-sums every money
column, and each file's manifest and the file read back must agree with it.

The database's numbers come from one aggregate query (SQLAlchemy Core, bound parameters),
written here from the spec's money rules (domain.md) rather than taken from the engine's
Polars expressions, so that a mistake in either shows. Files are read back with the readers
people use (Polars for text and Parquet, calamine for Excel), only the money columns.

The database keeps changing after an export has read it. A difference is therefore only a
failure when nothing changed the records in scope since the export read them: the change log
(`record_changes`, filled by triggers) says whether something did, and such a file is
reported as changed (a re-export follows for daily files) instead of failed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from python_calamine import CalamineWorkbook
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from record_exports.atomic import file_digest
from record_exports.change_log import as_date
from record_exports.columns import MoneyMode, OutputColumn
from record_exports.errors import first_line
from record_exports.manifest import manifest_path
from record_exports.params import ExportFormat, ExportParams
from record_exports.query import RecordFilters
from record_exports.schema import accounts, bookkeeping_records, record_changes

ROWS = "rows"
AccountDayKey = tuple[str, dt.date]
"""(account code, sale day)."""


def _money_sql() -> dict[str, ColumnElement[Any]]:
    """Each money column as the database computes it (domain.md, "Computed fields"; nulls
    count as 0 in the computed sums)."""
    r = bookkeeping_records.c

    def zero(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.coalesce(column, 0)

    earnings = r.sale_price_cents - zero(r.ebay_fees_cents)
    cogs = zero(r.amazon_price_cents) + zero(r.amazon_tax_cents) + zero(r.amazon_shipping_cents)
    label = zero(r.return_label_cost_cents)
    profit = sa.case(
        (r.status == "RETURN_CLOSED", -label),
        (r.status == "SUCCESSFUL", earnings - cogs),
        else_=earnings - cogs - label,
    )
    stored = {
        name: r[name]
        for name in (
            "sale_price_cents",
            "ebay_fees_cents",
            "amazon_price_cents",
            "amazon_tax_cents",
            "amazon_shipping_cents",
            "return_label_cost_cents",
        )
    }
    return {
        **stored,
        "earnings_net_cents": earnings,
        "cogs_total_cents": cogs,
        "profit_cents": profit,
    }


MONEY_SQL = _money_sql()


@dataclass(frozen=True)
class Totals:
    """Rows and the sum of each money column, in cents, by its canonical (cents) name."""

    rows: int
    money: Mapping[str, int] = field(default_factory=dict)

    def get(self, what: str) -> int:
        return self.rows if what == ROWS else self.money.get(what, 0)


def money_columns(columns: Sequence[OutputColumn]) -> list[str]:
    return [column.name for column in columns if column.is_money]


def _aggregates(money: Sequence[str]) -> list[ColumnElement[Any]]:
    return [
        sa.func.count().label(ROWS),
        *(sa.func.coalesce(sa.func.sum(MONEY_SQL[name]), 0).label(name) for name in money),
    ]


def _totals(row: Any, money: Sequence[str]) -> Totals:
    return Totals(int(row[0]), {name: int(row[i + 1]) for i, name in enumerate(money)})


def _where(filters: RecordFilters) -> list[ColumnElement[bool]]:
    r = bookkeeping_records.c
    conditions: list[ColumnElement[bool]] = [r.deleted_at.is_(None)]
    if filters.account_ids:
        conditions.append(r.account_id.in_(list(filters.account_ids)))
    if filters.statuses:
        conditions.append(r.status.in_(list(filters.statuses)))
    if filters.sale_date_from:
        conditions.append(r.sale_date >= dt.date.fromisoformat(filters.sale_date_from))
    if filters.sale_date_to:
        conditions.append(r.sale_date <= dt.date.fromisoformat(filters.sale_date_to))
    return conditions


def database_totals(engine: Engine, filters: RecordFilters, money: Sequence[str]) -> Totals:
    """What the database holds now for one export's filters."""
    query = sa.select(*_aggregates(money)).where(*_where(filters))
    with engine.connect() as connection:
        return _totals(connection.execute(query).one(), money)


def database_totals_by_account_day(
    engine: Engine, first: dt.date, last: dt.date, money: Sequence[str]
) -> dict[AccountDayKey, Totals]:
    """What the database holds now for every account-day of days `first`..`last`: one
    GROUP BY query, served by the `(account_id, sale_date)` index."""
    r, a = bookkeeping_records.c, accounts.c
    query = (
        sa.select(a.account_code, r.sale_date, *_aggregates(money))
        .select_from(bookkeeping_records.join(accounts, a.id == r.account_id))
        .where(*_where(RecordFilters(sale_date_from=str(first), sale_date_to=str(last))))
        .group_by(a.account_code, r.sale_date)
    )
    with engine.connect() as connection:
        return {
            (row[0], as_date(row[1])): _totals(row[2:], money) for row in connection.execute(query)
        }


def latest_change(engine: Engine) -> int:
    """The newest change-log id (0 when empty): taken before an export reads, it tells later
    which changes came after."""
    with engine.connect() as connection:
        value = connection.execute(sa.select(sa.func.max(record_changes.c.id))).scalar()
    return int(value or 0)


def changed_since(engine: Engine, change_id: int, filters: RecordFilters) -> bool:
    """Whether a change logged after `change_id` touches the accounts and days of `filters`.
    (Statuses are not in the log: any change of those accounts and days counts.)"""
    c = record_changes.c
    query = sa.select(c.id).where(c.id > change_id)
    if filters.account_ids:
        query = query.where(c.account_id.in_(list(filters.account_ids)))
    if filters.sale_date_from:
        query = query.where(c.sale_date >= dt.date.fromisoformat(filters.sale_date_from))
    if filters.sale_date_to:
        query = query.where(c.sale_date <= dt.date.fromisoformat(filters.sale_date_to))
    with engine.connect() as connection:
        return connection.execute(query.limit(1)).first() is not None


def pending_account_days(engine: Engine, first: dt.date, last: dt.date) -> set[AccountDayKey]:
    """Account-days of `first`..`last` with changes not yet exported (by account code)."""
    c, a = record_changes.c, accounts.c
    query = (
        sa.select(a.account_code, c.sale_date)
        .select_from(record_changes.join(accounts, a.id == c.account_id))
        .where(c.sale_date >= first, c.sale_date <= last)
        .distinct()
    )
    with engine.connect() as connection:
        return {(row[0], as_date(row[1])) for row in connection.execute(query)}


# Reading files back.


def _cents_from_text(name: str) -> pl.Expr:
    """Exact cents from two-decimal text (`12.34`, `-0.05`): the digits without the point."""
    return pl.col(name).str.replace(".", "", literal=True).cast(pl.Int64)


def _cents_from_number(name: str) -> pl.Expr:
    """Cents from a dollar number (JSON, Excel): exact below 2**53 cents."""
    return (pl.col(name).cast(pl.Float64) * 100).round(0).cast(pl.Int64)


def _sum_frame(frame: pl.LazyFrame, cents: Mapping[str, pl.Expr]) -> Totals:
    aggregated = frame.select(
        pl.len().alias(ROWS), *(expr.sum().alias(name) for name, expr in cents.items())
    ).collect()
    row = aggregated.row(0, named=True)
    return Totals(int(row[ROWS]), {name: int(row[name] or 0) for name in cents})


def _decompressed(path: Path) -> bytes:
    with pa.input_stream(str(path), compression="detect") as stream:
        return bytes(stream.read())


def _json_records(path: Path) -> pl.LazyFrame | None:
    """`{"records": [...]}` (compressed or not) as a frame of its records, None when it has
    none. The document is read whole: JSON exports are meant for small selections."""
    document = pl.read_json(io.BytesIO(_decompressed(path)))
    if not document["records"].list.len().sum():
        return None
    return document.lazy().explode("records").unnest("records")


def _ndjson_records(path: Path) -> pl.LazyFrame | None:
    """The lines of an NDJSON file, None when it has none (Polars cannot read an empty one)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        if not stream.read(1):
            return None
    return pl.scan_ndjson(path, infer_schema_length=None)


def _excel_totals(path: Path, titles: Mapping[str, str]) -> Totals:
    """Rows and money of every `Records` sheet (an export rolls over to `Records (2)`, ...);
    money cells hold dollars whatever the export's money mode."""
    workbook = CalamineWorkbook.from_path(str(path))
    rows = 0
    sums = dict.fromkeys(titles, 0)
    for sheet_name in workbook.sheet_names:
        if not sheet_name.startswith("Records"):
            continue
        sheet = workbook.get_sheet_by_name(sheet_name).iter_rows()
        header = [str(cell) for cell in next(sheet, [])]
        positions = {name: header.index(title) for name, title in titles.items()}
        for cells in sheet:
            rows += 1
            for name, position in positions.items():
                value = cells[position]
                if isinstance(value, int | float):
                    sums[name] += round(value * 100)
                elif value not in ("", None):
                    raise ValueError(f"{sheet_name}: money cell {value!r:.40} is not a number")
    return Totals(rows, sums)


def _whole_cents(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Int64)


def _decimal_cents(name: str) -> pl.Expr:
    return (pl.col(name) * 100).cast(pl.Int64)


def file_totals(
    path: Path, export_format: ExportFormat, columns: Sequence[OutputColumn], money: MoneyMode
) -> Totals:
    """Rows and money sums (cents) of an export file, read back; `money` is how its money
    columns are written (`ExportParams.money_in_file`)."""
    if export_format is ExportFormat.XLSX:
        return _excel_totals(path, {c.name: c.title for c in columns if c.is_money})
    shown = {c.name: c.output_name(money) for c in columns if c.is_money}
    dollars = money is MoneyMode.DOLLARS
    frame: pl.LazyFrame
    if export_format is ExportFormat.CSV:
        # Everything as text: money is read exactly, and no other column is parsed.
        frame = pl.scan_csv(path, infer_schema=False)
        convert = _cents_from_text if dollars else _whole_cents
    elif export_format is ExportFormat.PARQUET:
        frame = pl.scan_parquet(path)
        convert = _decimal_cents if dollars else _whole_cents
    else:
        is_json = export_format is ExportFormat.JSON
        records = _json_records(path) if is_json else _ndjson_records(path)
        if records is None:
            return Totals(0, dict.fromkeys(shown, 0))
        frame = records
        convert = _cents_from_number if dollars else _whole_cents
    return _sum_frame(frame, {name: convert(column) for name, column in shown.items()})


# Comparing.


@dataclass(frozen=True)
class Difference:
    """One number that does not agree: what the database, the manifest and the file say."""

    path: Path
    what: str
    database: Any
    manifest: Any = None
    file: Any = None

    def text(self) -> str:
        said = [f"database {self.database}"]
        if self.manifest is not None:
            said.append(f"manifest {self.manifest}")
        if self.file is not None:
            said.append(f"file {self.file}")
        return f"{self.path.name}: {self.what}: {', '.join(said)}"


@dataclass(frozen=True)
class FileCheck:
    """What the check found for one file."""

    path: Path
    database: Totals
    differences: list[Difference]
    changed: bool = False
    """Records in scope changed since the export read them: not comparable, not a failure."""

    @property
    def passed(self) -> bool:
        return self.changed or not self.differences


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def compare_file(
    path: Path,
    database: Totals,
    export_format: ExportFormat,
    columns: Sequence[OutputColumn],
    money: MoneyMode,
) -> list[Difference]:
    """Every number of `path` and its manifest that differs from the database's."""
    manifest = _read_manifest(path)
    if manifest is None:
        # Allowed after a crash between the two renames, but not for a file this run has
        # just finished: something removed or damaged it.
        differences = [Difference(path, "manifest", "present", "missing or unreadable")]
    else:
        size, sha256 = file_digest(path)
        differences = [
            Difference(path, what, "-", manifest.get(what), found)
            for what, found in (("bytes", size), ("sha256", sha256))
            if manifest.get(what) != found
        ]
        if manifest.get("row_count") != database.rows:
            differences.append(Difference(path, ROWS, database.rows, manifest.get("row_count")))
    try:
        read = file_totals(path, export_format, columns, money)
    except Exception as error:  # noqa: BLE001 - an unreadable file is this file's finding
        unreadable = Difference(path, "file", "readable", file=first_line(error)[:300])
        return [*differences, unreadable]
    for what in (ROWS, *money_columns(columns)):
        if read.get(what) != database.get(what):
            differences.append(Difference(path, what, database.get(what), file=read.get(what)))
    return sorted(
        _merged(differences),
        key=lambda d: DIGEST_FIELDS.index(d.what) if d.what in DIGEST_FIELDS else -1,
    )


DIGEST_FIELDS = ("bytes", "sha256")
"""Listed after the rows and money, which say more to a person."""


def _merged(differences: list[Difference]) -> list[Difference]:
    """One difference per number: the manifest's and the file's rows side by side."""
    merged: dict[str, Difference] = {}
    for difference in differences:
        earlier = merged.get(difference.what)
        if earlier is None:
            merged[difference.what] = difference
            continue
        merged[difference.what] = Difference(
            difference.path,
            difference.what,
            earlier.database,
            earlier.manifest if earlier.manifest is not None else difference.manifest,
            earlier.file if earlier.file is not None else difference.file,
        )
    return list(merged.values())


def check_export(
    engine: Engine,
    params: ExportParams,
    account_ids: Sequence[str],
    path: Path,
    since_change: int,
) -> FileCheck:
    """The check of one export (a request's file): its filters re-counted and re-summed."""
    filters = RecordFilters.from_params(params, account_ids)
    database = database_totals(engine, filters, money_columns(params.columns))
    differences = compare_file(path, database, params.format, params.columns, params.money_in_file)
    changed = bool(differences) and changed_since(engine, since_change, filters)
    return FileCheck(path, database, differences, changed)


@dataclass(frozen=True)
class DailyFileToCheck:
    account_code: str
    day: dt.date
    format: ExportFormat
    path: Path


def _check_daily_file(
    file: DailyFileToCheck,
    database: Mapping[AccountDayKey, Totals],
    pending: set[AccountDayKey],
    columns: Sequence[OutputColumn],
) -> FileCheck:
    key = (file.account_code, file.day)
    expected = database.get(key, Totals(0, {}))
    params = ExportParams(format=file.format)
    differences = compare_file(file.path, expected, file.format, columns, params.money_in_file)
    return FileCheck(file.path, expected, differences, key in pending)


PARALLEL_FROM_FILES = 2_000
"""Fewer files are checked in the run's process: starting helper processes costs about a
second, the read-back of 2,000 files about 3."""


def check_processes(files: int) -> int:
    """How many processes read a run's files back: one per core from `PARALLEL_FROM_FILES`
    files on. One in a daemonic process (a Celery worker's child), which may not have any."""
    if files < PARALLEL_FROM_FILES or multiprocessing.current_process().daemon:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _check_daily_batch(
    files: Sequence[DailyFileToCheck],
    database: Mapping[AccountDayKey, Totals],
    pending: set[AccountDayKey],
    columns: Sequence[OutputColumn],
) -> list[FileCheck]:
    return [_check_daily_file(file, database, pending, columns) for file in files]


def iter_daily_checks(
    engine: Engine,
    files: Sequence[DailyFileToCheck],
    first: dt.date,
    last: dt.date,
    processes: int | None = None,
) -> Iterator[FileCheck]:
    """The check of daily files of days `first`..`last`, file by file, in order: one GROUP BY
    for all of them, then each file read back, by `processes` processes (default
    `check_processes`). A year's backfill writes 14,600 files: read back in the run's process
    alone they took 24.6 s against the export's 32.8 s, while the export leaves a core idle
    much of the time; the read-back is Python-bound, so threads do not help, processes do."""
    columns = ExportParams().columns
    database = database_totals_by_account_day(engine, first, last, money_columns(columns))
    pending = pending_account_days(engine, first, last)
    workers = check_processes(len(files)) if processes is None else processes
    if workers <= 1:
        yield from _check_daily_batch(files, database, pending, columns)
        return
    size = -(-len(files) // (workers * 4))
    batches = [files[start : start + size] for start in range(0, len(files), size)]

    def scoped(batch: Sequence[DailyFileToCheck]) -> dict[AccountDayKey, Totals]:
        keys = {(file.account_code, file.day) for file in batch}
        return {key: database[key] for key in keys if key in database}

    # spawn, not fork: the run's process has threads (heartbeat, writers, Dagster's own).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        results = pool.map(
            _check_daily_batch,
            batches,
            [scoped(batch) for batch in batches],
            [pending] * len(batches),
            [columns] * len(batches),
        )
        for checks in results:
            yield from checks


def check_daily_files(
    engine: Engine,
    files: Sequence[DailyFileToCheck],
    first: dt.date,
    last: dt.date,
    processes: int | None = None,
) -> list[FileCheck]:
    return list(iter_daily_checks(engine, files, first, last, processes))


@dataclass
class DailyCheckSummary:
    """What a run's check reports: counts, and the files that differ or changed since (only
    those are kept, so a year of files costs no memory)."""

    checked: int = 0
    rows_in_database: int = 0
    failed: list[FileCheck] = field(default_factory=list)
    changed: list[FileCheck] = field(default_factory=list)

    def add(self, check: FileCheck) -> None:
        self.checked += 1
        if check.changed:
            self.changed.append(check)
        else:
            self.rows_in_database += check.database.rows
        if not check.passed:
            self.failed.append(check)

    @classmethod
    def of(cls, checks: Iterable[FileCheck]) -> DailyCheckSummary:
        summary = cls()
        for check in checks:
            summary.add(check)
        return summary
