"""Transient database errors are retried with backoff; export steps share one pool."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from pipelines import retries
from pipelines.concurrency import RECORDS_DATABASE_POOL
from pipelines.definitions import build_definitions
from resources.export_storage import ExportStorage
from resources.records_database import RecordsDatabase

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"


def test_unreachable_database_is_retried_then_fails(
    dagster_instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retries, "BASE_DELAY_SECONDS", 0.0)
    job = build_definitions(
        {
            "records_database": RecordsDatabase(url=UNREACHABLE),
            "export_storage": ExportStorage(root=str(tmp_path)),
        },
        timezone="UTC",
    ).resolve_job_def("export_records")
    result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)
    assert not result.success
    kinds = [event.event_type for event in result.all_events]
    assert kinds.count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == retries.MAX_RETRIES
    assert kinds.count(dg.DagsterEventType.STEP_FAILURE) == 1


def test_bad_input_is_not_retried(
    dagster_instance: dg.DagsterInstance, postgres_url: str, tmp_path: Path
) -> None:
    job = build_definitions(
        {
            "records_database": RecordsDatabase(url=postgres_url),
            "export_storage": ExportStorage(root=str(tmp_path)),
        },
        timezone="UTC",
    ).resolve_job_def("export_records")
    result = job.execute_in_process(
        run_config={"ops": {"export": {"config": {"columns": ["nope"]}}}},
        instance=dagster_instance,
        raise_on_error=False,
    )
    kinds = [event.event_type for event in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds


def test_transient_errors_are_recognised_through_causes() -> None:
    operational = sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())
    wrapped = RuntimeError("export failed")
    wrapped.__cause__ = operational
    assert retries.is_transient(operational) and retries.is_transient(wrapped)
    assert not retries.is_transient(ValueError("bad column"))
    assert [retries.backoff_seconds(n) for n in range(3)] == [2.0, 4.0, 8.0]


def test_export_steps_share_the_records_database_pool() -> None:
    defs = build_definitions(timezone="UTC")
    assert defs.resolve_job_def("export_records").graph.node_named("export").definition.pool == (
        RECORDS_DATABASE_POOL
    )
    asset = defs.resolve_assets_def("daily_account_exports")
    assert asset.op.pool == RECORDS_DATABASE_POOL
