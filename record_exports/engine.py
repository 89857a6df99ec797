"""One export, start to finish: validate, read in batches, compute, sink, rename, manifest.

The CLI, the `export_records` job and the daily asset all call `run_export`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.atomic import (
    FileDigest,
    ReportsDigest,
    file_digest,
    partial_file,
    sweep_stale_partials,
)
from record_exports.database import DatabaseTarget, create_engine_for, require_sqlite_file
from record_exports.frames import batch_to_frame, empty_frame
from record_exports.manifest import Manifest, publish_with_manifest
from record_exports.params import (
    ExportFormat,
    ExportParams,
    parse_export_params,
    unknown_accounts_error,
)
from record_exports.query import RecordFilters, build_query
from record_exports.reader import DEFAULT_BATCH_BYTES, iter_record_batches, prefetch
from record_exports.schema import accounts
from record_exports.sinks.base import EXCEL_MAX_ROWS_PER_SHEET, RecordSink, SinkOptions
from record_exports.sinks.csv import CsvSink
from record_exports.sinks.ndjson import JsonSink, NdjsonSink
from record_exports.sinks.parquet import ParquetSink
from record_exports.sinks.xlsx import XlsxSink
from record_exports.sqlite_reader import iter_sqlite_batches

SINKS: dict[ExportFormat, Callable[[Path, SinkOptions], RecordSink]] = {
    ExportFormat.CSV: CsvSink,
    ExportFormat.NDJSON: NdjsonSink,
    ExportFormat.JSON: JsonSink,
    ExportFormat.XLSX: XlsxSink,
    ExportFormat.PARQUET: ParquetSink,
}

ProgressCallback = Callable[[int], None]
BatchSource = Callable[[DatabaseTarget, ExportParams, Sequence[str]], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class ExportResult(Manifest):
    """A finished export: what its manifest says (the inherited fields), where the file and
    the manifest are, how long it took, and what the sink noticed."""

    path: Path
    manifest_path: Path
    seconds: float
    warnings: list[str] = field(default_factory=list)
    truncated_cells: int = 0

    def metadata(self) -> dict[str, Any]:
        """The one description of an export as plain values: the path, what its manifest
        says, and the cells cut. Run metadata (pipelines/run_metadata.py) is made from it."""
        return {"path": str(self.path), **self.describe(), "truncated_cells": self.truncated_cells}


def _account_ids_by_code(engine: Engine, codes: Sequence[str]) -> dict[str, str]:
    if not codes:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(accounts.c.account_code, accounts.c.id).where(
                accounts.c.account_code.in_(list(codes))
            )
        ).all()
    return {code: str(account_id) for code, account_id in rows}


def unknown_account_codes(engine: Engine, codes: Sequence[str]) -> list[str]:
    """The codes no account has, in the order given (`parse_export_params`'s account check)."""
    found = _account_ids_by_code(engine, codes)
    return [code for code in codes if code not in found]


def resolve_account_ids(engine: Engine, codes: Sequence[str]) -> list[str]:
    """Ids for account codes; an unknown code is bad input, named in the error."""
    found = _account_ids_by_code(engine, codes)
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise unknown_accounts_error(unknown)
    return [found[code] for code in codes]


def parse_checked(engine: Engine, raw: Mapping[str, Any]) -> ExportParams:
    """`parse_export_params` that also names account codes missing from the database, in
    the same error as every other bad field."""
    return parse_export_params(raw, unknown_accounts=partial(unknown_account_codes, engine))


def _account_ids(target: DatabaseTarget, codes: Sequence[str], engine: Engine | None) -> list[str]:
    if not codes:
        return []
    if engine is not None:
        return resolve_account_ids(engine, codes)
    temporary = create_engine_for(target)
    try:
        return resolve_account_ids(temporary, codes)
    finally:
        temporary.dispose()


def default_batches(
    target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    """The whole selection, in export order, read on one connection (on PostgreSQL the
    server may sort it with a parallel worker, see `server_plan`; on SQLite the sorter
    uses helper threads, see `sqlite_reader`)."""
    query = build_query(
        params.columns,
        params.include_remarks,
        RecordFilters.from_params(params, account_ids),
        is_postgresql=target.is_postgresql,
    )
    if not target.is_postgresql:
        return iter_sqlite_batches(target, query)
    return iter_record_batches(target, query, DEFAULT_BATCH_BYTES)


def export_manifest(
    params: ExportParams, row_count: int, digest: FileDigest, run_id: str | None
) -> Manifest:
    """What the manifest of a finished export file says about it."""
    size, sha256 = digest
    return Manifest(
        format=params.format.value,
        columns=params.column_names(),
        filters=params.filters(),
        money=params.money_in_file.value,
        row_count=row_count,
        bytes=size,
        sha256=sha256,
        created_at=dt.datetime.now(dt.UTC),
        run_id=run_id,
    )


def sink_options(params: ExportParams, rows_per_sheet: int) -> SinkOptions:
    return SinkOptions(
        columns=params.columns,
        money=params.money,
        bom=params.bom,
        excel_safe=params.excel_safe,
        compression=params.compression,
        rows_per_sheet=rows_per_sheet,
    )


def run_export(
    target: DatabaseTarget,
    params: ExportParams,
    destination: Path,
    *,
    run_id: str | None = None,
    progress: ProgressCallback | None = None,
    rows_per_sheet: int = EXCEL_MAX_ROWS_PER_SHEET,
    batches: BatchSource = default_batches,
    engine: Engine | None = None,
) -> ExportResult:
    """Write the selected records to `destination` atomically, with its manifest.

    Partials of dead exports in the destination's folder are removed first
    (`atomic.sweep_stale_partials`); the file and its manifest are published in the order
    `manifest.publish_with_manifest` gives, so a crash never leaves a manifest beside a
    file it does not describe.

    `engine`, an engine on the same database that the caller already holds (a Dagster run's),
    serves the account-code lookup; without one, a short-lived engine is made for it, only
    when there are codes to look up. Raises `ExportInputError` (before reading any record)
    for bad input, and `DatabaseSettingError` for a SQLite file that is missing (checked
    first: resolving account codes would otherwise create an empty one); any other error
    leaves nothing under `destination`.
    """
    started = time.monotonic()
    require_sqlite_file(target)
    account_ids = _account_ids(target, params.account_codes, engine)
    options = sink_options(params, rows_per_sheet)
    row_count = 0
    sweep_stale_partials(destination.parent)
    with partial_file(destination) as temp:
        sink = SINKS[params.format](temp, options)
        try:
            for batch in prefetch(batches(target, params, account_ids)):
                if batch.num_rows == 0:
                    continue
                sink.write(batch_to_frame(batch, params.columns))
                row_count += batch.num_rows
                if progress is not None:
                    progress(row_count)
            if row_count == 0:
                sink.write(empty_frame(params.columns))
            report = sink.close()
        except BaseException:
            sink.abort()
            raise
        # Text sinks hash their bytes as they write them; others' files are read back.
        written = sink.written() if isinstance(sink, ReportsDigest) else None
        manifest = export_manifest(params, row_count, written or file_digest(temp), run_id)
        manifest_file = publish_with_manifest(temp, destination, manifest)
    return ExportResult(
        **{spec.name: getattr(manifest, spec.name) for spec in fields(manifest)},
        path=destination,
        manifest_path=manifest_file,
        seconds=time.monotonic() - started,
        warnings=report.warnings,
        truncated_cells=report.truncated_cells,
    )
