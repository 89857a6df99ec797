"""Writing the files of account-days: many small ones per call, or one large one in pieces.

Each file is written like every export: to a locked partial, fsynced, then renamed into
place with its manifest in `manifest.publish_with_manifest`'s order (a manifest never
describes a file it does not match). The renames of a whole chunk of days become durable
together (`DeferredDirectorySyncs`, flushed by the caller before it reports the days done).
The first write of a run into a folder removes the partials dead exports left there
(`atomic.sweep_stale_partials`); the Excel template is written as a partial in the daily
root, swept the same way.

The two formats accountants open get a path without per-file set-up: CSV rows are
rendered once for all account-days of a frame and cut per file; Excel workbooks are built
from one template (`sinks.xlsx_workbooks`). Other formats go through their sink, one per
file. An account-day longer than `LARGE_ROWS` (or than a sheet holds) is streamed through
the sinks like a single export, so Excel rolls it over to more sheets.

A failure while writing one account-day's files (a disk error, a folder in the way) is
returned for that account-day; the other account-days are written regardless.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from record_exports.account_days import ACCOUNT, DAY, AccountDays, Key
from record_exports.atomic import (
    DeferredDirectorySyncs,
    FileDigest,
    ReportsDigest,
    file_digest,
    partial_file,
    sweep_stale_partials,
)
from record_exports.daily_layout import daily_path, names_a_folder
from record_exports.engine import SINKS, export_manifest, sink_options
from record_exports.manifest import publish_with_manifest
from record_exports.params import ExportFormat, ExportParams
from record_exports.sinks.base import RecordSink, SinkOptions
from record_exports.sinks.csv import csv_columns, csv_header, csv_lines
from record_exports.sinks.text import StringRuns
from record_exports.sinks.xlsx_workbooks import SmallWorkbooks, WorkbookRows

# An account-day longer than this is streamed through the sinks instead of built in memory.
LARGE_ROWS = 50_000
ACCOUNT_DAY_GROUP = "__account_day"


@dataclass(frozen=True)
class DailyFile:
    account_code: str
    day: dt.date
    format: str
    path: Path
    row_count: int
    bytes: int
    sha256: str
    truncated_cells: int = 0


AccountDayResult = tuple[Key, list[DailyFile] | Exception]
"""The files of an account-day, or why they could not be written."""


def check_account_code(account_code: str) -> None:
    """An account code names folders and files; one that cannot is this account's failure."""
    if not names_a_folder(account_code):
        raise ValueError(
            f"account code {account_code[:80]!r} cannot name a folder (letters, digits, '_', "
            "'.', '-'; not only dots)"
        )


class DailyWriters:
    """The files of account-days in the given formats, under the daily root."""

    def __init__(
        self,
        root: Path,
        formats: Sequence[ExportFormat],
        *,
        run_id: str | None,
        rows_per_sheet: int,
        syncs: DeferredDirectorySyncs,
        pool: Executor,
    ) -> None:
        self.root = root
        self.syncs = syncs
        self._pool = pool
        self._formats = list(dict.fromkeys(formats))
        self._run_id = run_id
        self._params = {fmt: ExportParams(format=fmt) for fmt in self._formats}
        self.options: SinkOptions = sink_options(ExportParams(), rows_per_sheet)
        self.columns = [column.name for column in self.options.columns]
        self.max_rows = min(LARGE_ROWS, rows_per_sheet)
        self._csv = csv_columns(self.options) if ExportFormat.CSV in self._formats else None
        self._csv_header = b""
        self._swept: set[Path] = set()
        self._swept_lock = threading.Lock()
        self.sweep_once(root)
        self._workbooks = (
            SmallWorkbooks(self.options, root) if ExportFormat.XLSX in self._formats else None
        )

    def sweep_once(self, folder: Path) -> None:
        """Remove dead exports' partials from `folder` the first time this run writes there
        (a live export's partials stay: `atomic.sweep_stale_partials`)."""
        with self._swept_lock:
            if folder in self._swept:
                return
            self._swept.add(folder)
        sweep_stale_partials(folder)

    @property
    def formats(self) -> list[ExportFormat]:
        return list(self._formats)

    def _params_for(self, fmt: ExportFormat, account_code: str, day: dt.date) -> ExportParams:
        """What a single export of this file would have been asked for (for the manifest)."""
        return dataclasses.replace(
            self._params[fmt], account_codes=(account_code,), sale_date_from=day, sale_date_to=day
        )

    def write_many(self, part: AccountDays) -> list[AccountDayResult]:
        """The files of every account-day of `part`, in order.

        What is done once for all (CSV text, Excel rows) is done here; each account-day's
        files are then written by a pool thread: most of a small file's time is waiting for
        fsync, and the waits of several files overlap.
        """
        frame = part.frame
        csv_rows: StringRuns | None = None
        if self._csv is not None:
            rendered = frame.select(self._csv)
            csv_rows = StringRuns(csv_lines(rendered))
            self._csv_header = self._csv_header or csv_header(rendered)
        workbooks: list[WorkbookRows | None] = [None] * len(part.keys)
        if self._workbooks is not None:
            grouped = frame.with_columns(pl.struct(DAY, ACCOUNT).rle_id().alias(ACCOUNT_DAY_GROUP))
            workbooks = list(self._workbooks.prepare(grouped, ACCOUNT_DAY_GROUP, part.lengths))
        tasks = []
        offset = 0
        for key, length, workbook in zip(part.keys, part.lengths, workbooks, strict=True):
            rows = frame.slice(offset, length)
            csv = csv_rows.run(offset, length) if csv_rows is not None else None
            tasks.append(self._pool.submit(self._write_account_day, key, rows, csv, workbook))
            offset += length
        return [(key, task.result()) for key, task in zip(part.keys, tasks, strict=True)]

    def _write_account_day(
        self,
        key: Key,
        rows: pl.DataFrame,
        csv: memoryview | None,
        workbook: WorkbookRows | None,
    ) -> list[DailyFile] | Exception:
        day, account_code = key
        try:
            check_account_code(account_code)
            files = []
            for fmt in self._formats:
                path = daily_path(self.root, account_code, day, fmt.extension)
                self.sweep_once(path.parent)
                if fmt is ExportFormat.CSV and csv is not None:
                    payload = self._csv_header + csv
                    files.append(self._write_payload(fmt, key, path, rows.height, payload, 0))
                elif fmt is ExportFormat.XLSX and workbook is not None:
                    assert self._workbooks is not None
                    payload = self._workbooks.workbook(workbook)
                    truncated = workbook.truncated_cells
                    files.append(
                        self._write_payload(fmt, key, path, rows.height, payload, truncated)
                    )
                else:
                    files.append(self._write_with_sink(fmt, key, path, rows))
            return files
        except Exception as error:  # noqa: BLE001 - reported for this account-day; see above
            return error

    def _write_payload(
        self, fmt: ExportFormat, key: Key, path: Path, rows: int, payload: bytes, truncated: int
    ) -> DailyFile:
        digest = len(payload), hashlib.sha256(payload).hexdigest()
        with partial_file(path) as temp:
            temp.write_bytes(payload)
            return self.publish(fmt, key, temp, path, rows, digest, truncated)

    def _write_with_sink(
        self, fmt: ExportFormat, key: Key, path: Path, frame: pl.DataFrame
    ) -> DailyFile:
        with partial_file(path) as temp:
            sink = SINKS[fmt](temp, self.options)
            try:
                sink.write(frame.select(self.columns))
                report = sink.close()
            except BaseException:
                sink.abort()
                raise
            written = sink.written() if isinstance(sink, ReportsDigest) else None
            digest = written or file_digest(temp)
            return self.publish(fmt, key, temp, path, frame.height, digest, report.truncated_cells)

    def publish(
        self,
        fmt: ExportFormat,
        key: Key,
        temp: Path,
        path: Path,
        rows: int,
        digest: FileDigest,
        truncated_cells: int,
    ) -> DailyFile:
        """Rename a complete file into place with its manifest; what the run reports of it."""
        day, account_code = key
        manifest = export_manifest(
            self._params_for(fmt, account_code, day), rows, digest, self._run_id
        )
        publish_with_manifest(temp, path, manifest, self.syncs)
        return DailyFile(account_code, day, fmt.value, path, rows, *digest, truncated_cells)

    def start_large(self, key: Key) -> LargeFiles:
        return LargeFiles(self, key)


class LargeFiles:
    """The files of one long account-day, written piece by piece through the sinks."""

    def __init__(self, writers: DailyWriters, key: Key) -> None:
        self._writers = writers
        self.key = key
        self._rows = 0
        self._stack = ExitStack()
        self._sinks: list[tuple[ExportFormat, Path, Path, RecordSink]] = []
        day, account_code = key
        try:
            check_account_code(account_code)
            for fmt in writers.formats:
                path = daily_path(writers.root, account_code, day, fmt.extension)
                writers.sweep_once(path.parent)
                temp = self._stack.enter_context(partial_file(path))
                self._sinks.append((fmt, path, temp, SINKS[fmt](temp, writers.options)))
        except BaseException as error:
            self.abort(error)
            raise

    def write(self, frame: pl.DataFrame) -> None:
        rows = frame.select(self._writers.columns)
        for _, _, _, sink in self._sinks:
            sink.write(rows)
        self._rows += frame.height

    def finish(self) -> list[DailyFile]:
        """Complete every file, then rename each into place with its manifest (a file that
        cannot be completed keeps all of them from being renamed)."""
        complete = []
        for fmt, path, temp, sink in self._sinks:
            report = sink.close()
            written = sink.written() if isinstance(sink, ReportsDigest) else None
            complete.append((fmt, path, temp, written or file_digest(temp), report.truncated_cells))
        files = [
            self._writers.publish(fmt, self.key, temp, path, self._rows, digest, truncated)
            for fmt, path, temp, digest, truncated in complete
        ]
        self._stack.close()
        return files

    def abort(self, error: BaseException) -> None:
        """Release the sinks and delete the temporary files; nothing is renamed."""
        for _, _, _, sink in self._sinks:
            sink.abort()
        self._stack.__exit__(type(error), error, error.__traceback__)
