"""Daily files for a range of sale days: one ordered read per chunk of days, many files.

`export_days` writes, for every account and sale day of the range that has records,
`<daily root>/<account>/<YYYY>/<MM>/<account>_<YYYY-MM-DD>.<ext>` in each format, each
with its manifest, holding exactly what a single export of that account and day holds
(same columns, same order). Per chunk of `CHUNK_DAYS` days:

1. lock the chunk's days (`day_locks`), so no other export of them reads or writes meanwhile;
2. read the change-log ids pending for those days (`change_log`), before any record;
3. read the records of the chunk once, ordered by day, account, then export order, and
   cut the stream into account-days (`account_days`), written as they complete
   (`daily_writers`); memory is bounded by a batch and one unfinished account-day;
4. remove the files of account-days in scope that no longer have records;
5. make the renames durable (one fsync per folder), delete the change ids of every
   account-day done, report each day, release the locks.

An account-day whose files fail is reported and skipped; the others are written, and
`DailyExportError` names every failed account-day at the end. Its change ids stay, so a
later export covers it again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.account_days import AccountDays, LargeEnd, LargePiece, account_days
from record_exports.atomic import DeferredDirectorySyncs
from record_exports.change_log import change_ids_by_account_day, delete_changes
from record_exports.columns import OutputColumn, column
from record_exports.daily_layout import existing_files, lock_folder
from record_exports.daily_writers import (
    AccountDayResult,
    DailyFile,
    DailyWriters,
    LargeFiles,
    check_account_code,
)
from record_exports.database import DatabaseTarget, create_engine_for
from record_exports.day_locks import WaitCallback, hold_days
from record_exports.engine import resolve_account_ids
from record_exports.errors import first_line
from record_exports.frames import batch_to_frame
from record_exports.manifest import MANIFEST_SUFFIX
from record_exports.params import ExportFormat
from record_exports.query import RecordFilters, build_query
from record_exports.reader import DEFAULT_BATCH_BYTES, iter_record_batches, prefetch
from record_exports.schema import accounts
from record_exports.sinks.base import EXCEL_MAX_ROWS_PER_SHEET
from record_exports.sqlite_reader import iter_sqlite_batches

# A month of days per read: each read is one sorted query; the locks and the change log are
# settled per chunk, so a failure loses at most one chunk's bookkeeping.
CHUNK_DAYS = 31
# Threads writing small files: most of their time is waiting for fsync.
WRITER_THREADS = 8


@dataclass(frozen=True)
class DailySelection:
    """Which daily files to write: days `first_day`..`last_day`, in `formats`, of the
    accounts `account_codes` (empty: every account)."""

    first_day: dt.date
    last_day: dt.date
    formats: tuple[ExportFormat, ...]
    account_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountDayFailure:
    account_code: str
    day: dt.date
    error: Exception

    def text(self) -> str:
        return f"{self.account_code} {self.day}: {first_line(self.error)}"


@dataclass
class DayOutcome:
    """What an export did for one sale day."""

    day: dt.date
    files: list[DailyFile] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    failures: list[AccountDayFailure] = field(default_factory=list)
    changes_covered: int = 0

    @property
    def rows(self) -> int:
        """Records of the day written (each account-day counted once, not per format)."""
        counted: dict[str, int] = {}
        for file in self.files:
            counted[file.account_code] = file.row_count
        return sum(counted.values())


@dataclass(frozen=True)
class ChunkProgress:
    first_day: dt.date
    last_day: dt.date
    rows: int
    files: int
    seconds: float


class DailyExportError(RuntimeError):
    """Some account-days could not be written; the message names each (up to 20)."""

    def __init__(self, failures: Sequence[AccountDayFailure]) -> None:
        self.failures = list(failures)
        shown = "; ".join(failure.text() for failure in self.failures[:20])
        more = f" (and {len(self.failures) - 20} more)" if len(self.failures) > 20 else ""
        super().__init__(
            f"{len(self.failures)} account-day(s) not written: {shown}{more}; the other files "
            "are complete, and a re-run writes the missing ones"
        )


ChunkBatches = Callable[
    [DatabaseTarget, Sequence[OutputColumn], RecordFilters], Iterator[pa.RecordBatch]
]


def ordered_batches(
    target: DatabaseTarget, columns: Sequence[OutputColumn], filters: RecordFilters
) -> Iterator[pa.RecordBatch]:
    """The selected records ordered by day and account, then export order."""
    query = build_query(
        columns, False, filters, is_postgresql=target.is_postgresql, by_day_and_account=True
    )
    if not target.is_postgresql:
        return iter_sqlite_batches(target, query)
    return iter_record_batches(target, query, DEFAULT_BATCH_BYTES)


def chunks(first: dt.date, last: dt.date, days: int) -> Iterator[tuple[dt.date, dt.date]]:
    while first <= last:
        end = min(last, first + dt.timedelta(days=days - 1))
        yield first, end
        first = end + dt.timedelta(days=1)


def account_ids_by_code(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(accounts.c.account_code, accounts.c.id))
        return {code: str(account_id) for code, account_id in rows}


def export_days(
    target: DatabaseTarget,
    selection: DailySelection,
    root: Path,
    *,
    run_id: str | None = None,
    rows_per_sheet: int = EXCEL_MAX_ROWS_PER_SHEET,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
    on_wait: WaitCallback | None = None,
    chunk_days: int = CHUNK_DAYS,
    batches: ChunkBatches = ordered_batches,
) -> Iterator[DayOutcome]:
    """Write the daily files of `selection` under `root` (see the module docstring), yielding
    each day's outcome, in day order, once its chunk is done.

    Raises `ExportInputError` for an unknown account code (before any file is touched) and,
    after the last day, `DailyExportError` when some account-days failed.
    """
    if selection.first_day > selection.last_day:
        raise ValueError(f"first day {selection.first_day} is after last day {selection.last_day}")
    failures: list[AccountDayFailure] = []
    with ExitStack() as stack:
        engine = create_engine_for(target)
        stack.callback(engine.dispose)
        ids_by_code = account_ids_by_code(engine)
        scope_ids = resolve_account_ids(engine, selection.account_codes)
        syncs = DeferredDirectorySyncs()
        pool = stack.enter_context(ThreadPoolExecutor(WRITER_THREADS, "daily-file-writer"))
        writers = DailyWriters(
            root,
            selection.formats,
            run_id=run_id,
            rows_per_sheet=rows_per_sheet,
            syncs=syncs,
            pool=pool,
        )
        run = _DailyRun(
            target, engine, selection, root, writers, syncs, ids_by_code, scope_ids, batches
        )
        for first, last in chunks(selection.first_day, selection.last_day, chunk_days):
            started = time.monotonic()
            days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
            with hold_days(lock_folder(root), days, on_wait):
                chunk = run.chunk(first, last)
            if on_chunk is not None:
                files = sum(len(outcome.files) for outcome in chunk)
                rows = sum(outcome.rows for outcome in chunk)
                on_chunk(ChunkProgress(first, last, rows, files, time.monotonic() - started))
            for outcome in chunk:
                failures += outcome.failures
                yield outcome
    if failures:
        raise DailyExportError(failures)


class _DailyRun:
    """The state one `export_days` call shares between its chunks."""

    def __init__(
        self,
        target: DatabaseTarget,
        engine: Engine,
        selection: DailySelection,
        root: Path,
        writers: DailyWriters,
        syncs: DeferredDirectorySyncs,
        ids_by_code: dict[str, str],
        scope_ids: list[str],
        batches: ChunkBatches,
    ) -> None:
        self.target = target
        self.engine = engine
        self.root = root
        self.writers = writers
        self.syncs = syncs
        self.ids_by_code = ids_by_code
        self.scope_ids = scope_ids
        self.scope_codes = list(selection.account_codes) or sorted(ids_by_code)
        self.batches = batches
        self.columns = (*writers.options.columns, column("account_code"))

    def chunk(self, first: dt.date, last: dt.date) -> list[DayOutcome]:
        pending = change_ids_by_account_day(self.engine, first, last, self.scope_ids)
        outcomes = {
            first + dt.timedelta(days=n): DayOutcome(first + dt.timedelta(days=n))
            for n in range((last - first).days + 1)
        }
        written: set[tuple[str, dt.date]] = set()
        for key, result in self._write(first, last):
            day, account_code = key
            written.add((account_code, day))
            if isinstance(result, Exception):
                outcomes[day].failures.append(AccountDayFailure(account_code, day, result))
            else:
                outcomes[day].files += result
        self._remove_gone(first, last, written, outcomes)
        self.syncs.flush()
        failed = {(f.account_code, f.day) for o in outcomes.values() for f in o.failures}
        codes = {account_id: code for code, account_id in self.ids_by_code.items()}
        covered: dict[dt.date, list[int]] = defaultdict(list)
        for (account_id, day), ids in pending.items():
            if (codes.get(account_id), day) not in failed:
                covered[day] += ids
        delete_changes(self.engine, [i for ids in covered.values() for i in ids])
        for day, ids in covered.items():
            outcomes[day].changes_covered = len(ids)
        return list(outcomes.values())

    def _frames(self, first: dt.date, last: dt.date) -> Iterator[pl.DataFrame]:
        """The chunk's records as export frames (plus `account_code`), in the read's order."""
        filters = RecordFilters(
            account_ids=tuple(self.scope_ids),
            sale_date_from=first.isoformat(),
            sale_date_to=last.isoformat(),
        )
        for batch in prefetch(self.batches(self.target, self.columns, filters)):
            if batch.num_rows:
                yield batch_to_frame(batch, self.columns)

    def _write(self, first: dt.date, last: dt.date) -> Iterator[AccountDayResult]:
        large: LargeFiles | None = None
        failed: Exception | None = None  # why the large account-day being read failed
        try:
            for part in account_days(self._frames(first, last), self.writers.max_rows):
                if isinstance(part, AccountDays):
                    yield from self.writers.write_many(part)
                elif isinstance(part, LargePiece) and failed is None:
                    try:
                        large = large or self.writers.start_large(part.key)
                        large.write(part.frame)
                    except Exception as error:  # noqa: BLE001 - reported for this account-day
                        if large is not None:
                            large.abort(error)
                        large, failed = None, error
                elif isinstance(part, LargeEnd):
                    yield part.key, self._finish_large(large, failed)
                    large, failed = None, None
        except BaseException as error:
            if large is not None:
                large.abort(error)
            raise

    @staticmethod
    def _finish_large(
        large: LargeFiles | None, failed: Exception | None
    ) -> list[DailyFile] | Exception:
        if failed is not None or large is None:
            return failed or RuntimeError("no rows reached the large account-day's files")
        try:
            return large.finish()
        except Exception as error:  # noqa: BLE001 - reported for this account-day
            large.abort(error)
            return error

    def _remove_gone(
        self,
        first: dt.date,
        last: dt.date,
        written: set[tuple[str, dt.date]],
        outcomes: dict[dt.date, DayOutcome],
    ) -> None:
        """Delete the files (and manifests) of account-days in scope that have no records now."""
        for account_code in self.scope_codes:
            try:
                check_account_code(account_code)
            except ValueError:
                continue
            for day, paths in existing_files(self.root, account_code, first, last).items():
                if (account_code, day) in written:
                    continue
                try:
                    # Manifests first: a crash between leaves a file without one, never a
                    # manifest without its file.
                    for path in sorted(paths, key=lambda p: not p.name.endswith(MANIFEST_SUFFIX)):
                        path.unlink(missing_ok=True)
                        self.syncs(path.parent)
                        outcomes[day].removed.append(path)
                except OSError as error:
                    outcomes[day].failures.append(AccountDayFailure(account_code, day, error))
