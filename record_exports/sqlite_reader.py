"""Reading the embedded SQLite database in Arrow batches with a fixed schema.

ADBC's SQLite driver infers each column's type from the values of its first batch, so a
text column that happens to be all NULL there becomes int64 and the next batch fails.
SQLite is the small embedded default, so a plain `sqlite3` cursor with a schema taken
from the column kinds is the dependable choice here; PostgreSQL keeps the ADBC path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing

import pyarrow as pa

from record_exports.columns import ALL_COLUMNS, COLUMN_TYPES
from record_exports.database import DatabaseTarget
from record_exports.query import CompiledQuery

SQLITE_BATCH_ROWS = 50_000


def iter_sqlite_batches(
    target: DatabaseTarget, query: CompiledQuery, batch_rows: int = SQLITE_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Yield the query's rows in order as Arrow batches typed by the columns' kinds."""
    uri = f"file:{target.adbc_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        cursor = connection.execute(query.sql, query.parameters)
        names = [description[0] for description in cursor.description]
        schema = pa.schema([(name, COLUMN_TYPES[ALL_COLUMNS[name]].sqlite_arrow) for name in names])
        while rows := cursor.fetchmany(batch_rows):
            columns = list(zip(*rows, strict=True))
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(values, type=field.type)
                    for values, field in zip(columns, schema, strict=True)
                ],
                schema=schema,
            )
