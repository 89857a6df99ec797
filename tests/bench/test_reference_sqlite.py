"""The SQLite reference of the bench runs the project's one SQL oracle on SQLite: the same
rows, in the same order, with the same money, as the engine's export of the same file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from bench.reference_sqlite import PLANS, SORTED_SQL, SQLITE_SQL
from record_exports.database import create_engine_for, parse_database_url
from record_exports.engine import run_export
from record_exports.params import ExportParams
from record_exports.schema import create_schema
from record_exports.seed import seed_records


@pytest.mark.parametrize("plan", PLANS)
def test_the_oracle_runs_on_sqlite_and_equals_our_export(
    sqlite_url: str, tmp_path: Path, plan: str
) -> None:
    target = parse_database_url(sqlite_url)
    engine = create_engine_for(target)
    try:
        create_schema(engine)
        seed_records(engine, 300, 3, seed=5)
        ours = run_export(target, ExportParams(), tmp_path / "ours.csv", engine=engine)
    finally:
        engine.dispose()
    with sqlite3.connect(target.adbc_uri()) as connection:
        cursor = connection.execute(SORTED_SQL if plan == "sorted" else SQLITE_SQL)
        names = [column[0] for column in cursor.description]
        reference = pl.DataFrame(cursor.fetchall(), schema=names, orient="row")
    exported = pl.read_csv(ours.path, infer_schema=False)
    assert exported.columns == names
    assert ours.row_count == reference.height > 0
    assert exported.equals(reference.cast(pl.String))
