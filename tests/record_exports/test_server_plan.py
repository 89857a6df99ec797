"""The server's plan for an export: settings chosen from the heap order, order kept under
a parallel sort, bytes still those of PostgreSQL's own COPY."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from sqlalchemy.engine import Engine

from record_exports.columns import MoneyMode
from record_exports.database import DatabaseTarget
from record_exports.engine import run_export
from record_exports.params import ExportParams
from record_exports.query import RecordFilters, build_query
from record_exports.reader import connect, iter_record_batches
from record_exports.seed import seed_records
from record_exports.server_plan import (
    BASE_SETTINGS,
    NO_INDEX_WALK,
    read_settings,
    settings_for,
)
from tests.factories import libpq_url, oracle_copy_csv

RECORDS = 3_000
TIE_TIME = "2026-06-01 12:00:00+00"
SMALL_BATCH_BYTES = 64 * 1024
# Make a parallel plan the cheapest even for a few thousand rows.
FORCE_PARALLEL = {
    "parallel_setup_cost": "0",
    "parallel_tuple_cost": "0",
    "min_parallel_table_scan_size": "0",
}


def _seed(engine: Engine, target: DatabaseTarget) -> None:
    """Seeded records in random heap order, a third of them tied on `updated_at`."""
    seed_records(engine, RECORDS, 4, seed=11)
    with psycopg.connect(target.adbc_uri(), autocommit=True) as connection:
        connection.execute(
            "UPDATE bookkeeping_records SET updated_at = %s::timestamptz "
            "WHERE id IN (SELECT id FROM bookkeeping_records ORDER BY id LIMIT %s)",
            (TIE_TIME, RECORDS // 3),
        )
        connection.execute("ANALYZE bookkeeping_records")


def _read_settings(target: DatabaseTarget) -> dict[str, str]:
    with closing(connect(target)) as connection, closing(connection.cursor()) as cursor:
        return read_settings(cursor)


@pytest.mark.parametrize(
    ("correlation", "walks_index"),
    [(None, False), (0.0, False), (0.3, False), (-0.89, False), (0.95, True), (-0.99, True)],
)
def test_settings_for_correlation(correlation: float | None, walks_index: bool) -> None:
    settings = settings_for(correlation)
    assert settings["jit"] == "off"
    assert settings["max_parallel_workers_per_gather"] == "1"
    assert (settings.get("enable_indexscan") != "off") is walks_index
    assert (settings.get("enable_indexonlyscan") != "off") is walks_index


def test_never_analyzed_table_is_read_with_a_sort(
    pg_engine: Engine, pg_target: DatabaseTarget
) -> None:
    assert _read_settings(pg_target) == {**BASE_SETTINGS, **NO_INDEX_WALK}


def test_settings_follow_the_heap_order(pg_engine: Engine, pg_target: DatabaseTarget) -> None:
    _seed(pg_engine, pg_target)
    assert _read_settings(pg_target) == {**BASE_SETTINGS, **NO_INDEX_WALK}
    with psycopg.connect(pg_target.adbc_uri(), autocommit=True) as connection:
        connection.execute("CLUSTER bookkeeping_records USING ix_records_updated_at_id")
        connection.execute("ANALYZE bookkeeping_records")
    assert _read_settings(pg_target) == BASE_SETTINGS


def _forced_parallel_batches(
    target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    query = build_query(
        params.columns,
        params.include_remarks,
        RecordFilters.from_params(params, account_ids),
        is_postgresql=True,
    )
    forced = dataclasses.replace(query, settings={**FORCE_PARALLEL, **query.settings})
    return iter_record_batches(target, forced, SMALL_BATCH_BYTES)


def test_parallel_plan_is_what_runs(pg_engine: Engine, pg_target: DatabaseTarget) -> None:
    _seed(pg_engine, pg_target)
    query = build_query(ExportParams().columns, False, RecordFilters(), is_postgresql=True)
    with psycopg.connect(libpq_url(pg_target.url.render_as_string(hide_password=False))) as conn:
        for name, value in {**_read_settings(pg_target), **FORCE_PARALLEL}.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN (ANALYZE) {query.sql}"))
    assert "Gather Merge" in plan
    assert "Workers Planned: 1" in plan
    assert "Index Scan" not in plan


def test_parallel_sort_keeps_copy_bytes(
    pg_engine: Engine, pg_target: DatabaseTarget, tmp_path: Path
) -> None:
    """Ties on `updated_at` split between the worker's and the leader's share still come
    out ordered by id, so the file is PostgreSQL's own COPY output, byte for byte."""
    _seed(pg_engine, pg_target)
    url = pg_target.url.render_as_string(hide_password=False)
    for money in MoneyMode:
        out = tmp_path / f"records-{money.value}.csv"
        result = run_export(
            pg_target, ExportParams(money=money), out, batches=_forced_parallel_batches
        )
        assert result.row_count > RECORDS * 0.9
        assert out.read_bytes() == oracle_copy_csv(url, money.value)


def test_filters_under_a_parallel_plan(
    pg_engine: Engine, pg_target: DatabaseTarget, tmp_path: Path
) -> None:
    _seed(pg_engine, pg_target)
    params = ExportParams(
        statuses=("SUCCESSFUL", "RETURN_CLOSED"),
        sale_date_from=dt.date(2026, 3, 1),
    )
    out = tmp_path / "filtered.csv"
    run_export(pg_target, params, out, batches=_forced_parallel_batches)
    where = "r.status IN ('SUCCESSFUL', 'RETURN_CLOSED') AND r.sale_date >= DATE '2026-03-01'"
    expected = oracle_copy_csv(pg_target.url.render_as_string(hide_password=False), where=where)
    assert expected.count(b"\n") > 100
    assert out.read_bytes() == expected
