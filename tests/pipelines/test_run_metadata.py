"""Run metadata says everything an export's description says, each in the form the UI shows
best."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from sqlalchemy.engine import Engine

from pipelines.run_metadata import export_metadata
from record_exports.database import DatabaseTarget
from record_exports.engine import run_export
from record_exports.params import parse_export_params
from record_exports.seed import seed_records


def test_every_fact_of_an_export_is_in_its_metadata(
    target: DatabaseTarget, engine: Engine, tmp_path: Path
) -> None:
    seed_records(engine, 50, 1, seed=2)
    params = parse_export_params({"format": "ndjson", "statuses": ["SUCCESSFUL"]})
    result = run_export(target, params, tmp_path / "x.ndjson")
    metadata = export_metadata(result)
    facts = result.metadata()
    named = {"row_count": "dagster/row_count"}
    assert {named.get(name, name) for name in facts} <= set(metadata)
    assert metadata["dagster/row_count"] == dg.MetadataValue.int(result.row_count)
    assert metadata["path"] == dg.MetadataValue.path(str(tmp_path / "x.ndjson"))
    assert metadata["columns"] == dg.MetadataValue.text(", ".join(params.column_names()))
    filters = metadata["filters"]
    assert isinstance(filters, dg.TableMetadataValue)
    assert [record.data["value"] for record in filters.records][:2] == [
        "all accounts",
        "SUCCESSFUL",
    ]
