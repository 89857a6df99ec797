"""From raw database batches to export frames: one dtype per column kind, computed money fields.

Both databases arrive here: PostgreSQL with real dates and timestamps, SQLite with ISO
text. After `normalize`, every frame has the dtypes `OutputColumn` promises.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa

from record_exports.columns import ALL_COLUMNS, COLUMN_TYPES, UTC, ColumnKind, OutputColumn
from record_exports.money import COMPUTED_EXPRESSIONS


def _normalized(name: str, dtype: pl.DataType) -> pl.Expr:
    """The source column `name` cast to its kind's frame dtype; ISO text (SQLite) parsed, a
    timestamp without a time zone taken as UTC."""
    kind = ALL_COLUMNS[name]
    target = COLUMN_TYPES[kind].frame
    column = pl.col(name)
    if kind is ColumnKind.DATE and dtype == pl.String:
        return column.str.to_date("%Y-%m-%d")
    if kind is ColumnKind.TIMESTAMP:
        if dtype == pl.String:
            return column.str.to_datetime(time_unit="us", time_zone=UTC)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            return column.cast(pl.Datetime("us")).dt.replace_time_zone(UTC)
        return column.cast(pl.Datetime("us")).dt.convert_time_zone(UTC)
    return column.cast(target)


def export_frame(raw: pl.LazyFrame, columns: Sequence[OutputColumn]) -> pl.LazyFrame:
    """Typed source columns, then exactly `columns` in order, computed fields included."""
    schema = raw.collect_schema()
    typed = raw.with_columns(_normalized(name, dtype) for name, dtype in schema.items())
    return typed.select(
        COMPUTED_EXPRESSIONS[column.name]().alias(column.name)
        if column.name in COMPUTED_EXPRESSIONS
        else pl.col(column.name)
        for column in columns
    )


def batch_to_frame(batch: pa.RecordBatch, columns: Sequence[OutputColumn]) -> pl.DataFrame:
    """One Arrow batch from the reader as the export frame a sink takes."""
    raw = pl.from_arrow(batch)
    assert isinstance(raw, pl.DataFrame)
    return export_frame(raw.lazy(), columns).collect()


def empty_frame(columns: Sequence[OutputColumn]) -> pl.DataFrame:
    """The zero-row frame of an export, so every sink can still write its header."""
    return pl.DataFrame(schema={column.name: column.dtype for column in columns})
