"""What ops and assets attach to runs and materializations, and what they log at the end."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import dagster as dg

from record_exports.engine import ExportResult

NOT_SET = {
    "account_codes": "all accounts",
    "statuses": "all statuses",
    "sale_date_from": "from the earliest record",
    "sale_date_to": "up to the latest record",
}
"""How the filters table shows a filter left empty."""


def filters_table(filters: Mapping[str, Any]) -> dg.TableMetadataValue:
    """The filters an export used, one row each, readable without opening JSON."""
    records = []
    for name, value in filters.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        records.append(dg.TableRecord({"filter": name, "value": shown or NOT_SET.get(name, "")}))
    schema = dg.TableSchema([dg.TableColumn("filter", "string"), dg.TableColumn("value", "string")])
    return dg.MetadataValue.table(records, schema)


def files_table(result: ExportResult) -> dg.TableMetadataValue:
    """One row per file the export wrote: the file and its manifest."""
    schema = dg.TableSchema(
        [
            dg.TableColumn("file", "path"),
            dg.TableColumn("rows", "int"),
            dg.TableColumn("bytes", "int"),
            dg.TableColumn("sha256", "string"),
        ]
    )
    records = [
        dg.TableRecord(
            {
                "file": str(result.path),
                "rows": result.row_count,
                "bytes": result.bytes,
                "sha256": result.sha256,
            }
        ),
        dg.TableRecord(
            {
                "file": str(result.manifest_path),
                "rows": None,
                "bytes": result.manifest_path.stat().st_size,
                "sha256": None,
            }
        ),
    ]
    return dg.MetadataValue.table(records, schema)


def export_metadata(result: ExportResult) -> dict[str, dg.MetadataValue]:
    """The metadata every export run carries, from `ExportResult.metadata()`: the row count
    under Dagster's own name, the path as a path, counts as whole numbers, the columns as the
    file shows them, the filters and the files as tables (shown in the run log as they are;
    JSON would hide behind a click), plus the seconds the export took."""
    facts = result.metadata()
    return {
        "dagster/row_count": dg.MetadataValue.int(facts["row_count"]),
        "path": dg.MetadataValue.path(facts["path"]),
        "format": dg.MetadataValue.text(facts["format"]),
        "money": dg.MetadataValue.text(facts["money"]),
        "columns": dg.MetadataValue.text(", ".join(facts["columns"])),
        "filters": filters_table(facts["filters"]),
        "bytes": dg.MetadataValue.int(facts["bytes"]),
        "sha256": dg.MetadataValue.text(facts["sha256"]),
        "files": files_table(result),
        "truncated_cells": dg.MetadataValue.int(facts["truncated_cells"]),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
    }


def log_result(log: logging.Logger | dg.DagsterLogManager, result: ExportResult) -> None:
    for warning in result.warnings:
        log.warning(warning)
    log.info(
        f"wrote {result.row_count:,} rows, {result.bytes:,} bytes to {result.path} "
        f"in {result.seconds:.2f} s"
    )
