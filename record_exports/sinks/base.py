"""What every sink is given and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from record_exports.columns import MoneyMode, OutputColumn
from record_exports.params import Compression

EXCEL_MAX_ROWS_PER_SHEET = 1_048_575


@dataclass(frozen=True)
class SinkOptions:
    """Everything a sink needs to know beyond the batches themselves."""

    columns: tuple[OutputColumn, ...]
    money: MoneyMode = MoneyMode.CENTS
    bom: bool = False
    excel_safe: bool = False
    compression: Compression = Compression.NONE
    rows_per_sheet: int = EXCEL_MAX_ROWS_PER_SHEET


@dataclass
class SinkReport:
    """What a sink noticed while writing: warnings for the run log, counts for metadata."""

    warnings: list[str] = field(default_factory=list)
    truncated_cells: int = 0
    sheets: int = 0


class RecordSink(Protocol):
    """Writes batches in order to one file at `path` (a temporary name the caller renames).

    Constructed as `Sink(path, options)`; it opens the file itself.
    Each batch holds exactly `options.columns`, in order, named by their canonical
    (cents) names, money as Int64 cents; the sink applies the money mode itself.
    `close` completes the file; `abort` releases it after a failure (the caller deletes it).
    """

    def write(self, batch: pl.DataFrame) -> None: ...

    def close(self) -> SinkReport: ...

    def abort(self) -> None: ...
