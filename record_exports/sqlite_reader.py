"""Reading the embedded SQLite database as Arrow batches through ADBC's SQLite driver.

The driver steps the statement and builds Arrow arrays in C, so no Python runs per row
(the `sqlite3` cursor this replaced spent most of an export building tuples). Two things
make it dependable and fast here:

- Types. The driver types each result column by the values of its first batch, and a
  column with only NULLs there becomes int64, so the first text after it would fail the
  read. `query` therefore sends each nullable text column as never-NULL text plus a flag
  column (`<name>__is_null`), and `restore_nulls` turns the pair back into one column with
  its NULLs. Integer and money columns are int64 whatever the first batch holds; each
  column is checked against its kind's Arrow type.
- Plan. The query sorts instead of walking the `(updated_at, id)` index (see
  `query._sqlite_sort_key`), and `PRAGMA threads` lets SQLite's sorter use a second core.
  The sorter spills to temporary files in SQLite's temp folder (`SQLITE_TMPDIR`, else
  `TMPDIR`, else `/var/tmp` or `/tmp`), which SQLite deletes as it opens them, so memory
  stays bounded and a killed export leaves none.

The file is opened read-only and never created; a missing file, a file that is not a
database and a lock held by a writer each raise an error naming `RECORDS_DATABASE_URL`.

The driver carries its own copy of SQLite. SQLite's locks are POSIX locks, which a process
drops on a file when any of its descriptors for that file closes, so no other connection of
this process (SQLAlchemy's) may be open on the records file while it reads: `run_export`
disposes of its engine before the read starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import adbc_driver_manager
import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa
import pyarrow.compute as pc

from record_exports.columns import ALL_COLUMNS, COLUMN_TYPES
from record_exports.database import (
    DatabaseSettingError,
    DatabaseTarget,
    require_sqlite_file,
    sqlite_error,
)
from record_exports.errors import ExportFailedError
from record_exports.query import SQLITE_NULL_FLAG_SUFFIX, CompiledQuery
from record_exports.settings import RECORDS_DATABASE_URL

# Rows per Arrow batch (bench/README.md: 4k rows cost more CPU, 64k about 60 MB more peak).
SQLITE_BATCH_ROWS = 16_384
# How long to wait for a writer's lock before giving up (Python's sqlite3 waits as long).
BUSY_TIMEOUT_MS = 5_000
# SQLite's sorter sorts and merges its runs in this many helper threads (PRAGMA threads);
# on 2 cores 2 had the best median times of 0, 1 and 2 (bench/README.md).
SORTER_THREADS = 2
_BATCH_ROWS_OPTION = "adbc.sqlite.query.batch_rows"


def _file_uri(target: DatabaseTarget) -> str:
    """A read-only SQLite URI: the file is never created, and `?`, `#`, `%` or spaces in its
    path are escaped."""
    path = Path(target.adbc_uri()).resolve()
    return f"file:{quote(str(path))}?mode=ro"


def restore_nulls(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with each `<name>__is_null` flag folded back into `<name>` as NULLs, and
    every column of its kind's Arrow type (an error names a column whose values are not)."""
    names = batch.schema.names
    arrays: list[Any] = []
    fields: list[pa.Field] = []
    for index, name in enumerate(names):
        if name.endswith(SQLITE_NULL_FLAG_SUFFIX):
            continue
        wanted = COLUMN_TYPES[ALL_COLUMNS[name]].sqlite_arrow
        values = batch.column(index)
        flag = name + SQLITE_NULL_FLAG_SUFFIX
        if flag in names:
            is_null = pc.cast(batch.column(names.index(flag)), pa.bool_())
            values = pc.if_else(is_null, pa.scalar(None, values.type), values)
        if values.type != wanted:
            try:
                values = values.cast(wanted)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise ExportFailedError(
                    f"column {name}: the SQLite database holds values that are not {wanted} "
                    f"({error})"
                ) from None
        arrays.append(values)
        fields.append(pa.field(name, wanted))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


_TYPE_MISMATCH = re.compile(r"Type mismatch in column (\d+)")
# SQLITE_FULL: on a read-only connection only the sorter's temporary files can fill a disk.
_DISK_FULL = "database or disk is full"


def _temp_folder_full() -> ExportFailedError:
    return ExportFailedError(
        "SQLite's temporary folder is full while sorting the records (SQLITE_TMPDIR, else "
        f"TMPDIR, /var/tmp or /tmp; it needs about the size of the exported rows): {_DISK_FULL}"
    )


def _read_error(schema: pa.Schema, error: OSError) -> Exception:
    """A value of another type after the first batch fixed a column's type: name the column."""
    if _DISK_FULL in str(error):
        return _temp_folder_full()
    match = _TYPE_MISMATCH.search(str(error))
    if match is None or int(match.group(1)) >= len(schema.names):
        return error
    name = schema.names[int(match.group(1))]
    return ExportFailedError(
        f"column {name}: the SQLite database holds values of another type than the first "
        f"rows ({error})"
    )


def _explained(
    target: DatabaseTarget, error: adbc_driver_manager.Error, detail: str = ""
) -> Exception:
    """The error to show for a failure to open or query the file; `detail` is what
    finalizing the failed statement reported."""
    message = f"{error} {detail}"
    explained = sqlite_error(target, message)
    if explained is not None:
        return explained
    if _DISK_FULL in message:
        return _temp_folder_full()
    if "no such table" in message:
        return DatabaseSettingError(
            f"{RECORDS_DATABASE_URL.variable} ({target.describe()}) has no records tables; "
            "run `record-exports init-db` first"
        )
    if detail:
        return ExportFailedError(f"reading the SQLite database failed: {error}; {detail}")
    return error


def _connect(target: DatabaseTarget) -> Any:
    try:
        return adbc_sqlite.connect(_file_uri(target))
    except adbc_driver_manager.Error as error:
        failure = _explained(target, error)
    # Raised here, not in the `except` block, so the driver's error is not its context:
    # `pipelines.retries` would take an `OperationalError` in the chain for a transient one.
    raise failure


def _execute(target: DatabaseTarget, cursor: Any, sql: str, parameters: Any = None) -> None:
    try:
        cursor.execute(sql, parameters=parameters)
        return
    except adbc_driver_manager.Error as error:
        # Some step errors (SQLITE_FULL) reach ADBC 1.8 only as "INTERNAL: (unknown error)";
        # SQLite reports them again when the statement is finalized, so finalize it now.
        failure = _explained(target, error, detail=_discard(cursor))
    raise failure  # outside the `except` block: see `_connect`


def _discard(cursor: Any) -> str:
    """Close a cursor whose read failed; return what closing it reported, if anything.

    SQLite reports a failed step's error again when the statement is finalized; that echo
    must not replace the first error, so it is returned, not raised. The statement is
    released all the same, so the cursor is marked closed, or it would try again when
    collected and print an "Underflow" error."""
    try:
        cursor.close()
    except adbc_driver_manager.Error as error:
        return str(error)
    finally:
        cursor._closed = True
    return ""


def _batches(
    target: DatabaseTarget, cursor: Any, query: CompiledQuery, batch_rows: int, busy_ms: int
) -> Iterator[pa.RecordBatch]:
    # Constants of this module: PRAGMA takes no bound parameters.
    _execute(target, cursor, f"PRAGMA busy_timeout = {int(busy_ms)}")
    cursor.fetchall()
    _execute(target, cursor, f"PRAGMA threads = {SORTER_THREADS}")
    cursor.fetchall()
    cursor.adbc_statement.set_options(**{_BATCH_ROWS_OPTION: str(batch_rows)})
    # The driver reads (and types) the first batch here: the sort runs now.
    _execute(target, cursor, query.sql, query.parameters or None)
    reader: pa.RecordBatchReader = cursor.fetch_record_batch()
    with reader:
        while (batch := _next_batch(reader)) is not None:
            yield restore_nulls(batch)


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except OSError as error:
        failure = _read_error(reader.schema, error)
    raise failure  # outside the `except` block: see `_connect`


def iter_sqlite_batches(
    target: DatabaseTarget,
    query: CompiledQuery,
    batch_rows: int = SQLITE_BATCH_ROWS,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Iterator[pa.RecordBatch]:
    """Yield the query's rows in order as Arrow batches typed by the columns' kinds."""
    require_sqlite_file(target)
    connection = _connect(target)
    try:
        cursor = connection.cursor()
        try:
            yield from _batches(target, cursor, query, batch_rows, busy_timeout_ms)
        except BaseException:
            _discard(cursor)
            raise
        cursor.close()
    finally:
        connection.close()
