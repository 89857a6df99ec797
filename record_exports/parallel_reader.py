"""One large selection read over several PostgreSQL connections at once, still in export order.

Most of an export's time on PostgreSQL is the server's: scanning, sorting by
`(updated_at, id)` and encoding rows for COPY, all on one backend per connection. Split
the ordered result into disjoint key ranges and each range gets its own backend, so the
server's share runs on several cores at once.

The output order stays exactly that of one query: range 0 (the newest records) streams
straight to the consumer while the later ranges are read at the same time and spooled to
Arrow IPC files in a private temporary folder; after range 0, each spool is replayed in
order. Memory stays bounded: the consumer holds a few batches, a spooling thread one, and
spooled data lives on disk (the page cache), not in the process.

Split points come from a page sample (`TABLESAMPLE SYSTEM`) of the selection's keys, which
also estimates the selection's size: small selections are read on one connection, as are
all SQLite reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from record_exports.database import DatabaseTarget
from record_exports.params import ExportParams
from record_exports.query import CompiledQuery, RecordFilters, build_key_sample, build_query
from record_exports.reader import (
    DEFAULT_BATCH_BYTES,
    apply_settings,
    connect,
    execute_batches,
    iter_record_batches,
    prefetch,
)

# Below this many (estimated) records one connection is as fast and simpler.
PARALLEL_MIN_ROWS = 250_000
# Share of the selection each range reads, in export order. Range 0 streams to the consumer
# while the others are read alongside it, so it is the smallest: the consumer starts sooner.
DEFAULT_RANGE_WEIGHTS: tuple[float, ...] = (0.5, 0.5)
# Table rows the key sample aims at, whatever the table's size.
SAMPLE_TABLE_ROWS = 30_000
# Above this |correlation| of `updated_at` with the heap order, an index scan on
# (updated_at, id) reads the heap nearly in order and may serve the ordering; below it each
# index entry is a random heap access, much slower than a sort of the range.
INDEX_ORDER_CORRELATION = 0.9
# Per-session planner settings of the range queries. The ranges already use the cores, so
# no parallel workers; JIT compiling costs more than it saves on these simple expressions;
# a larger sort memory keeps the per-range sort out of temporary files.
RANGE_SESSION_SETTINGS = {
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "work_mem": "32MB",
}

_TABLE_STATS_SQL = """
SELECT c.reltuples::float8 AS reltuples,
       pg_relation_size(c.oid)::float8 AS heap_bytes,
       (SELECT s.correlation FROM pg_stats AS s
         WHERE s.schemaname = n.nspname AND s.tablename = c.relname
           AND s.attname = 'updated_at')::float8 AS correlation
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = 'bookkeeping_records'::regclass
"""
# Used only when the table was never analyzed: a rough row size for the heap size.
_ROUGH_ROW_BYTES = 200


@dataclass(frozen=True)
class RangePlan:
    """How a selection is read: its key ranges in export order and the session settings."""

    estimated_rows: int
    ranges: tuple[RecordFilters, ...]
    settings: dict[str, str]

    @property
    def is_parallel(self) -> bool:
        return len(self.ranges) > 1


def _sample_percent(table_rows: float) -> float:
    if table_rows <= SAMPLE_TABLE_ROWS:
        return 100.0
    return max(0.01, 100.0 * SAMPLE_TABLE_ROWS / table_rows)


def _split_positions(sample_rows: int, weights: Sequence[float]) -> list[int]:
    """Sample row positions ending each range but the last (cumulative weights)."""
    total = sum(weights)
    positions: list[int] = []
    cumulative = 0.0
    for weight in weights[:-1]:
        cumulative += weight
        position = min(sample_rows - 1, max(0, round(sample_rows * cumulative / total) - 1))
        if not positions or position > positions[-1]:
            positions.append(position)
    return positions


def _ranges_between(
    filters: RecordFilters, splits: Sequence[tuple[str, str]]
) -> tuple[RecordFilters, ...]:
    """Disjoint ranges covering `filters`, cut after each split key (keys in export order).

    A split key is the last row of its range: `not_after` keeps keys >= it, `after` keeps
    keys < it. Bounds already in `filters` stay on the outermost ranges.
    """
    ranges: list[RecordFilters] = []
    previous = filters.after
    for split in splits:
        ranges.append(dataclasses.replace(filters, after=previous, not_after=split))
        previous = split
    ranges.append(dataclasses.replace(filters, after=previous, not_after=filters.not_after))
    return tuple(ranges)


def plan_ranges(
    target: DatabaseTarget,
    filters: RecordFilters,
    *,
    weights: Sequence[float] = DEFAULT_RANGE_WEIGHTS,
    min_rows: int = PARALLEL_MIN_ROWS,
) -> RangePlan:
    """Sample the selection's keys and cut it into ranges (or keep one when it is small)."""
    if not target.is_postgresql:
        return RangePlan(estimated_rows=-1, ranges=(filters,), settings={})
    with closing(connect(target)) as connection:
        return plan_ranges_on(connection, filters, weights=weights, min_rows=min_rows)


def plan_ranges_on(
    connection: Any,
    filters: RecordFilters,
    *,
    weights: Sequence[float] = DEFAULT_RANGE_WEIGHTS,
    min_rows: int = PARALLEL_MIN_ROWS,
) -> RangePlan:
    """`plan_ranges` on an open ADBC connection to PostgreSQL, which stays open."""
    if len(weights) < 2:
        return RangePlan(estimated_rows=-1, ranges=(filters,), settings={})
    with closing(connection.cursor()) as cursor:
        cursor.execute(_TABLE_STATS_SQL)
        reltuples, heap_bytes, correlation = cursor.fetchone()
        table_rows = reltuples if reltuples and reltuples > 0 else heap_bytes / _ROUGH_ROW_BYTES
        percent = _sample_percent(table_rows)
        sample = build_key_sample(filters, percent)
        apply_settings(cursor, sample.settings)
        cursor.execute(sample.sql)
        keys: pa.Table = cursor.fetch_arrow_table()
    estimated = round(keys.num_rows * 100.0 / percent)
    settings = dict(RANGE_SESSION_SETTINGS)
    if correlation is None or abs(correlation) < INDEX_ORDER_CORRELATION:
        # Sort each range instead of walking the (updated_at, id) index through a heap in
        # random order; bitmap scans (e.g. on account_id, sale_date) stay available.
        settings["enable_indexscan"] = "off"
        settings["enable_indexonlyscan"] = "off"
    if estimated < min_rows or keys.num_rows < 2 * len(weights):
        return RangePlan(estimated_rows=estimated, ranges=(filters,), settings={})
    updated = keys.column("updated_at").to_pylist()
    ids = keys.column("id").to_pylist()
    splits = [(updated[i], ids[i]) for i in _split_positions(keys.num_rows, weights)]
    return RangePlan(
        estimated_rows=estimated, ranges=_ranges_between(filters, splits), settings=settings
    )


def _with_settings(query: CompiledQuery, settings: dict[str, str]) -> CompiledQuery:
    return dataclasses.replace(query, settings={**settings, **query.settings})


class _SpoolThread(threading.Thread):
    """Reads one range into an Arrow IPC stream file while the consumer is busy elsewhere."""

    def __init__(
        self, target: DatabaseTarget, query: CompiledQuery, path: Path, batch_bytes: int
    ) -> None:
        super().__init__(name=f"record-range-spool-{path.stem}", daemon=True)
        self.target = target
        self.query = query
        self.path = path
        self.batch_bytes = batch_bytes
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self._cursor: Any = None
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            with closing(connect(self.target)) as connection, closing(connection.cursor()) as cur:
                with self._lock:
                    self._cursor = cur
                if self.stopping.is_set():
                    return
                reader = execute_batches(cur, self.query, self.batch_bytes)
                with (
                    pa.OSFile(str(self.path), "wb") as sink,
                    pa.ipc.new_stream(sink, reader.schema) as writer,
                ):
                    for batch in reader:
                        if self.stopping.is_set():
                            return
                        writer.write_batch(batch)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, re-raised there
            if not self.stopping.is_set():
                self.error = error
        finally:
            with self._lock:
                self._cursor = None

    def stop(self) -> None:
        """Ask the thread to stop, cancelling a query that is still running on the server."""
        self.stopping.set()
        with self._lock:
            cursor = self._cursor
            if cursor is not None:
                # Best effort: the thread stops at its next batch either way.
                with contextlib.suppress(Exception):
                    cursor.adbc_cancel()

    def replay(self) -> Iterator[pa.RecordBatch]:
        """The spooled batches, in order, once the range is completely read."""
        self.join()
        if self.error is not None:
            raise self.error
        with pa.OSFile(str(self.path), "rb") as source:
            yield from pa.ipc.open_stream(source)


def read_ranges(
    target: DatabaseTarget,
    queries: Sequence[CompiledQuery],
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    spool_dir: str | None = None,
    connection: Any = None,
) -> Iterator[pa.RecordBatch]:
    """Batches of `queries` (disjoint ranges in export order) as one ordered stream.

    All ranges start at once on their own connections; the first streams through, the
    others are read alongside and spooled to disk, then replayed in order. (Holding the
    later ranges on the server instead, unread until their turn, measured slower.)
    The first range runs on `connection` when given (the caller closes it), else on a
    connection of its own.
    """

    def first_range() -> Iterator[pa.RecordBatch]:
        if connection is None:
            yield from iter_record_batches(target, queries[0], batch_bytes)
            return
        with closing(connection.cursor()) as cursor:
            yield from execute_batches(cursor, queries[0], batch_bytes)

    if len(queries) == 1:
        yield from first_range()
        return
    with tempfile.TemporaryDirectory(prefix="record-exports-spool-", dir=spool_dir) as folder:
        spools = [
            _SpoolThread(target, query, Path(folder) / f"range-{number}.arrows", batch_bytes)
            for number, query in enumerate(queries[1:], start=1)
        ]
        for spooler in spools:
            spooler.start()
        try:
            yield from prefetch(first_range())
            for spooler in spools:
                yield from spooler.replay()
        finally:
            for spooler in spools:
                spooler.stop()
            for spooler in spools:
                spooler.join()


def parallel_batches(
    target: DatabaseTarget,
    params: ExportParams,
    account_ids: Sequence[str],
    *,
    weights: Sequence[float] = DEFAULT_RANGE_WEIGHTS,
    min_rows: int = PARALLEL_MIN_ROWS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    spool_dir: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """A `BatchSource`: the whole selection in export order, read over several connections
    when it is large and the database is PostgreSQL, else over one."""
    filters = RecordFilters.from_params(params, account_ids)

    def queries_of(plan: RangePlan) -> list[CompiledQuery]:
        return [
            _with_settings(
                build_query(
                    params.columns,
                    params.include_remarks,
                    ranged,
                    is_postgresql=target.is_postgresql,
                ),
                plan.settings,
            )
            for ranged in plan.ranges
        ]

    if not target.is_postgresql:
        plan = plan_ranges(target, filters, weights=weights, min_rows=min_rows)
        yield from read_ranges(
            target, queries_of(plan), batch_bytes=batch_bytes, spool_dir=spool_dir
        )
        return
    # The planning connection goes on to read the first range: one connection set-up
    # (about 40 ms) fewer before the first batch.
    with closing(connect(target)) as connection:
        plan = plan_ranges_on(connection, filters, weights=weights, min_rows=min_rows)
        yield from read_ranges(
            target,
            queries_of(plan),
            batch_bytes=batch_bytes,
            spool_dir=spool_dir,
            connection=connection,
        )
