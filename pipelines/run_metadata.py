"""What ops and assets attach to runs and materializations, and what they log at the end."""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg

from record_exports.engine import ExportResult


def export_metadata(result: ExportResult) -> dict[str, Any]:
    """The metadata every export run and materialization carries."""
    return {
        "dagster/row_count": dg.MetadataValue.int(result.row_count),
        "path": dg.MetadataValue.path(str(result.path)),
        "bytes": dg.MetadataValue.int(result.bytes),
        "sha256": dg.MetadataValue.text(result.sha256),
        "format": dg.MetadataValue.text(result.format),
        "columns": dg.MetadataValue.json(result.columns),
        "filters": dg.MetadataValue.json(result.filters),
        "money": dg.MetadataValue.text(result.money),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "truncated_cells": dg.MetadataValue.int(result.truncated_cells),
    }


def log_result(log: logging.Logger | dg.DagsterLogManager, result: ExportResult) -> None:
    for warning in result.warnings:
        log.warning(warning)
    log.info(
        f"wrote {result.row_count:,} rows, {result.bytes:,} bytes to {result.path} "
        f"in {result.seconds:.2f} s"
    )
