"""Parquet through pyarrow's writer, one row group per batch, zstd."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from record_exports.columns import MoneyMode, OutputColumn
from record_exports.money import dollars_decimal
from record_exports.sinks.base import SinkOptions, SinkReport


def _parquet_column(column: OutputColumn, money: MoneyMode) -> pl.Expr:
    expr = pl.col(column.name)
    if column.is_money and money is MoneyMode.DOLLARS:
        expr = dollars_decimal(expr)
    return expr.alias(column.output_name(money))


class ParquetSink:
    def __init__(self, path: Path, options: SinkOptions) -> None:
        self._path = path
        self._expressions = [_parquet_column(column, options.money) for column in options.columns]
        self._writer: pq.ParquetWriter | None = None

    def write(self, batch: pl.DataFrame) -> None:
        table = batch.select(self._expressions).to_arrow(compat_level=pl.CompatLevel.oldest())
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, table.schema, compression="zstd")
        self._writer.write_table(table)

    def close(self) -> SinkReport:
        if self._writer is not None:
            self._writer.close()
        return SinkReport()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
