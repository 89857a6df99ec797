"""Properties of `ExportConfig` (pipelines/export_job.py) as the Launchpad and run configs give
it: Dagster's config check, then `export_params()`. Every value is either refused by Dagster
with an error naming the field's path, refused by the parser naming the field, or becomes
params that are safe (the file stays in its folder, values never become SQL text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from hypothesis import given, settings

from pipelines.definitions import build_definitions
from pipelines.export_job import ExportConfig
from record_exports.errors import ExportInputError
from resources.export_storage import ExportStorage
from resources.records_database import RecordsDatabase
from tests.hostile_values import (
    check_file_name_stays_inside,
    check_rejection,
    check_values_never_in_sql,
    raw_params,
)

FOLDER = Path("/exports/on-demand")


@pytest.fixture(scope="module")
def export_job() -> dg.JobDefinition:
    defs = build_definitions(
        {
            "records_database": RecordsDatabase(url="sqlite:///unused.db"),
            "export_storage": ExportStorage(root=str(FOLDER.parent)),
        }
    )
    return defs.resolve_job_def("export_records")


def checked_config(job: dg.JobDefinition, raw: dict[str, Any]) -> ExportConfig | None:
    """The op's config as the run would get it, or None when Dagster refuses the run config
    (after checking the error names each offending field)."""
    try:
        resolved = dg.validate_run_config(job, {"ops": {"export": {"config": raw}}})
    except dg.DagsterInvalidConfigError as error:
        text = str(error)
        assert error.errors, text
        for problem in error.errors:
            assert "root:ops:export:config" in problem.message, problem.message[:300]
        # Dagster names a field by its path, an unexpected one as its repr.
        named = [key for key in raw if str(key) in text or repr(str(key))[1:-1] in text]
        assert named, text[:500]
        return None
    return ExportConfig(**resolved["ops"]["export"]["config"])


@settings(max_examples=300, deadline=None)
@given(raw_params)
def test_run_config_is_refused_naming_fields_or_gives_safe_params(
    export_job: dg.JobDefinition, raw: dict[str, Any]
) -> None:
    config = checked_config(export_job, raw)
    if config is None:
        return
    try:
        params = config.export_params()
    except ExportInputError as error:
        check_rejection(error, raw)
        return
    check_file_name_stays_inside(FOLDER, params)
    check_values_never_in_sql(params)
    # What the run records as its config gives the same export again.
    assert ExportConfig(**params.to_config()).export_params() == params
