"""What ops and assets attach to runs and materializations, and what they log at the end."""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg

from record_exports.engine import ExportResult


def metadata_value(value: Any) -> dg.MetadataValue:
    """A plain value as Dagster metadata: a whole number as a number, text as text, lists and
    objects as JSON."""
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return dg.MetadataValue.int(value)
    return dg.MetadataValue.json(value)


def export_metadata(result: ExportResult) -> dict[str, dg.MetadataValue]:
    """The metadata every export run carries: `ExportResult.metadata()`, with the row count
    under Dagster's own name and the path as a path, plus the seconds the export took."""
    facts = result.metadata()
    return {
        "dagster/row_count": dg.MetadataValue.int(facts.pop("row_count")),
        "path": dg.MetadataValue.path(facts.pop("path")),
        **{name: metadata_value(value) for name, value in facts.items()},
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
    }


def log_result(log: logging.Logger | dg.DagsterLogManager, result: ExportResult) -> None:
    for warning in result.warnings:
        log.warning(warning)
    log.info(
        f"wrote {result.row_count:,} rows, {result.bytes:,} bytes to {result.path} "
        f"in {result.seconds:.2f} s"
    )
