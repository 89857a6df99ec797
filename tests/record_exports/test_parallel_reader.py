"""The parallel range reader yields exactly what one connection yields, in the same order."""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from record_exports.columns import resolve_columns
from record_exports.database import DatabaseTarget, create_engine_for, parse_database_url
from record_exports.engine import run_export, single_connection_batches
from record_exports.parallel_reader import (
    _ranges_between,
    _split_positions,
    parallel_batches,
    plan_ranges,
    plan_ranges_on,
)
from record_exports.params import ExportParams
from record_exports.query import RecordFilters
from record_exports.reader import connect
from record_exports.schema import create_schema
from record_exports.seed import account_code, account_id, seed_records

ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RECORDS = 3_000
TIE_TIME = "2026-06-01 12:00:00+00"
SMALL_BATCH_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def pg_target() -> Iterator[DatabaseTarget]:
    """A throwaway database: seeded records plus a large group tied on `updated_at`."""
    name = f"rx_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        target = parse_database_url(f"{base}/{name}")
        engine = create_engine_for(target)
        try:
            create_schema(engine)
            seed_records(engine, RECORDS, 4, seed=11)
        finally:
            engine.dispose()
        with psycopg.connect(target.adbc_uri(), autocommit=True) as connection:
            # A third of the records share one timestamp, so split points land inside ties
            # and only the id orders them.
            connection.execute(
                "UPDATE bookkeeping_records SET updated_at = %s::timestamptz "
                "WHERE id IN (SELECT id FROM bookkeeping_records ORDER BY id LIMIT %s)",
                (TIE_TIME, RECORDS // 3),
            )
            connection.execute("ANALYZE bookkeeping_records")
        yield target
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _table(batches: Iterator[pa.RecordBatch]) -> pa.Table | None:
    collected = list(batches)
    if not collected:
        return None
    return pa.Table.from_batches(collected).combine_chunks()


def _single(target: DatabaseTarget, params: ExportParams, ids: Sequence[str]) -> pa.Table | None:
    return _table(single_connection_batches(target, params, ids))


def _assert_same(expected: pa.Table | None, actual: pa.Table | None) -> None:
    expected_rows = 0 if expected is None else expected.num_rows
    actual_rows = 0 if actual is None else actual.num_rows
    assert actual_rows == expected_rows
    if expected_rows:
        assert expected is not None and actual is not None
        assert actual.column_names == expected.column_names
        assert actual.equals(expected)


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.2, 0.3, 0.5), (0.3, 0.3, 0.4)])
def test_parallel_read_equals_single_connection_read(
    pg_target: DatabaseTarget, weights: tuple[float, ...]
) -> None:
    params = ExportParams()
    expected = _single(pg_target, params, [])
    assert expected is not None and expected.num_rows > RECORDS * 0.9
    plan = plan_ranges(pg_target, RecordFilters(), weights=weights, min_rows=0)
    assert len(plan.ranges) == len(weights)
    actual = _table(
        parallel_batches(
            pg_target,
            params,
            [],
            weights=weights,
            min_rows=0,
            batch_bytes=SMALL_BATCH_BYTES,
        )
    )
    _assert_same(expected, actual)


def test_split_points_fall_inside_ties(pg_target: DatabaseTarget) -> None:
    plan = plan_ranges(pg_target, RecordFilters(), weights=(0.5, 0.5), min_rows=0)
    split = plan.ranges[0].not_after
    assert split is not None
    assert dt.datetime.fromisoformat(split[0]) == dt.datetime.fromisoformat(TIE_TIME)


def test_ranges_cover_the_selection_without_overlap(pg_target: DatabaseTarget) -> None:
    params = ExportParams(columns=resolve_columns(["id"], False))
    plan = plan_ranges(pg_target, RecordFilters(), weights=(0.25, 0.25, 0.5), min_rows=0)
    assert plan.is_parallel
    assert plan.settings["jit"] == "off"
    expected = _single(pg_target, params, [])
    assert expected is not None
    counts = []
    for ranged in plan.ranges:
        batches = list(single_range(pg_target, params, ranged))
        counts.append(sum(batch.num_rows for batch in batches))
    assert sum(counts) == expected.num_rows
    assert all(count > 0 for count in counts)


def single_range(
    target: DatabaseTarget, params: ExportParams, filters: RecordFilters
) -> Iterator[pa.RecordBatch]:
    from record_exports.query import build_query
    from record_exports.reader import iter_record_batches

    query = build_query(params.columns, params.include_remarks, filters, is_postgresql=True)
    return iter_record_batches(target, query)


def test_filters_and_remarks(pg_target: DatabaseTarget) -> None:
    params = ExportParams(
        account_codes=(account_code(1), account_code(3)),
        statuses=("SUCCESSFUL", "RETURN_CLOSED"),
        sale_date_from=dt.date(2026, 3, 1),
        sale_date_to=dt.date(2026, 10, 31),
        include_remarks=True,
        columns=resolve_columns([], True),
    )
    ids = [account_id(account_code(1)), account_id(account_code(3))]
    expected = _single(pg_target, params, ids)
    assert expected is not None and expected.num_rows > 100
    plan = plan_ranges(
        pg_target, RecordFilters.from_params(params, ids), weights=(0.5, 0.5), min_rows=0
    )
    assert plan.is_parallel
    actual = _table(
        parallel_batches(
            pg_target, params, ids, min_rows=0, weights=(0.4, 0.6), batch_bytes=SMALL_BATCH_BYTES
        )
    )
    _assert_same(expected, actual)


def test_empty_selection(pg_target: DatabaseTarget) -> None:
    params = ExportParams(sale_date_from=dt.date(2030, 1, 1))
    plan = plan_ranges(pg_target, RecordFilters.from_params(params, []), min_rows=0)
    assert plan.estimated_rows == 0
    assert not plan.is_parallel
    _assert_same(None, _table(parallel_batches(pg_target, params, [], min_rows=0)))


def test_small_selection_reads_on_one_connection(pg_target: DatabaseTarget) -> None:
    params = ExportParams(account_codes=(account_code(2),))
    ids = [account_id(account_code(2))]
    plan = plan_ranges(pg_target, RecordFilters.from_params(params, ids))
    assert not plan.is_parallel
    assert 0 < plan.estimated_rows < RECORDS
    _assert_same(_single(pg_target, params, ids), _table(parallel_batches(pg_target, params, ids)))


def test_consumer_stopping_early_leaves_nothing_running(
    pg_target: DatabaseTarget, tmp_path: Path
) -> None:
    before = set(threading.enumerate())
    batches = parallel_batches(
        pg_target,
        ExportParams(),
        [],
        min_rows=0,
        spool_dir=str(tmp_path),
        batch_bytes=SMALL_BATCH_BYTES,
    )
    first = next(batches)
    assert first.num_rows > 0
    batches.close()
    assert set(threading.enumerate()) - before == set()
    assert list(tmp_path.iterdir()) == []


def test_run_export_bytes_match_single_connection(
    pg_target: DatabaseTarget, tmp_path: Path
) -> None:
    params = ExportParams()
    single = run_export(pg_target, params, tmp_path / "one.csv", batches=single_connection_batches)
    parallel = run_export(
        pg_target,
        params,
        tmp_path / "many.csv",
        batches=functools.partial(parallel_batches, min_rows=0, batch_bytes=SMALL_BATCH_BYTES),
    )
    assert parallel.row_count == single.row_count
    assert parallel.sha256 == single.sha256
    assert (tmp_path / "many.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_split_positions_and_ranges() -> None:
    assert _split_positions(10, (0.5, 0.5)) == [4]
    assert _split_positions(10, (0.2, 0.3, 0.5)) == [1, 4]
    assert _split_positions(2, (0.1, 0.1, 0.8)) == [0]
    base = RecordFilters(statuses=("SUCCESSFUL",))
    first, middle, last = _ranges_between(base, [("t2", "b"), ("t1", "a")])
    assert (first.after, first.not_after) == (None, ("t2", "b"))
    assert (middle.after, middle.not_after) == (("t2", "b"), ("t1", "a"))
    assert (last.after, last.not_after) == (("t1", "a"), None)
    assert {first.statuses, middle.statuses, last.statuses} == {("SUCCESSFUL",)}


def test_plan_on_an_open_connection_leaves_it_usable(pg_target: DatabaseTarget) -> None:
    connection = connect(pg_target)
    try:
        plan = plan_ranges_on(connection, RecordFilters(), weights=(0.5, 0.5), min_rows=0)
        assert plan.is_parallel and len(plan.ranges) == 2
        assert plan.settings["jit"] == "off"
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 AS one")
            assert cursor.fetchone() == (1,)
    finally:
        connection.close()
