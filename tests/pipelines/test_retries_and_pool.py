"""Transient database errors are retried with backoff; export steps share one pool, and
the shipped limit of 2 holds a third export step (in its body) until a slot is free."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from pipelines import pool_slots, retries
from pipelines.concurrency import RECORDS_DATABASE_POOL
from pipelines.definitions import build_definitions
from pipelines.export_job import EXPORT_JOB
from pipelines.local_instance import DEPLOY_INSTANCE_FILE, local_instance_yaml
from pipelines.location_runs import execute_location_run
from pipelines.pool_slots import Heartbeat, heartbeat_key
from record_exports.seed import seed_records
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
        run_config={"ops": {"export": {"config": {"sale_date_from": "2026-02-30"}}}},
        instance=dagster_instance,
        raise_on_error=False,
    )
    kinds = [event.event_type for event in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    assert kinds.count(dg.DagsterEventType.STEP_FAILURE) == 1


def test_transient_errors_are_recognised_through_causes() -> None:
    operational = sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())
    wrapped = RuntimeError("export failed")
    wrapped.__cause__ = operational
    assert retries.is_transient(operational) and retries.is_transient(wrapped)
    assert not retries.is_transient(ValueError("bad column"))
    assert [retries.backoff_seconds(n) for n in range(3)] == [2.0, 4.0, 8.0]


def test_export_steps_claim_their_slot_themselves() -> None:
    """No Dagster `pool=` on the export steps: Dagster's executor would claim the slot
    outside the step, where a killed run keeps it for ever (pipelines/pool_slots.py). The
    steps claim it in their body; the test below shows that they wait."""
    defs = build_definitions(timezone="UTC")
    op = defs.resolve_job_def("export_records").graph.node_named("export").definition
    assert isinstance(op, dg.OpDefinition) and op.pool is None
    assert defs.resolve_assets_def("daily_account_exports").op.pool is None


def _shipped_pools(source: str) -> dict[str, object]:
    """The pool settings of the instance config a user actually gets."""
    text = local_instance_yaml() if source == "cli" else DEPLOY_INSTANCE_FILE.read_text()
    pools: dict[str, object] = yaml.safe_load(text)["concurrency"]["pools"]
    return pools


def _live_holder(instance: dg.DagsterInstance) -> str:
    """A STARTED run holding a slot, with the heartbeat of a live process (this one)."""
    run = instance.add_run(
        dg.DagsterRun(
            job_name=EXPORT_JOB, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )
    )
    beat = Heartbeat(
        run_id=run.run_id,
        step_key="export",
        host=pool_slots.THIS_HOST,
        pid=os.getpid(),
        pid_start=pool_slots.process_start(os.getpid()),
        run_process=True,
        beat=time.time(),
    )
    instance.run_storage.set_cursor_values({heartbeat_key(run.run_id, "export"): beat.to_json()})
    storage = instance.event_log_storage
    assert storage.claim_concurrency_slot(RECORDS_DATABASE_POOL, run.run_id, "export").is_claimed
    return run.run_id


@pytest.mark.parametrize(
    ("source", "launch"),
    [
        ("cli", "location_run"),
        ("cli", "execute_in_process"),
        ("deploy", "execute_in_process"),
        ("deploy", "daily"),
    ],
)
def test_an_export_waits_while_the_pool_is_full(
    pg_engine: sa.engine.Engine, postgres_url: str, tmp_path: Path, source: str, launch: str
) -> None:
    """With the shipped limit of 2 and both slots held by other live runs, a third export
    step waits; it runs as soon as one slot is freed. `location_run` is how the CLI runs an
    export (pipelines/location_runs.py); `daily` is a day of the daily asset."""
    seed_records(pg_engine, 300, 2, seed=4)
    pools = _shipped_pools(source)
    assert pools == {"default_limit": 2}
    overrides = {"concurrency": {"pools": pools}}
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        storage = instance.event_log_storage
        assert pool_slots.ensure_pool_limit(instance) == 2
        holders = [_live_holder(instance), _live_holder(instance)]

        defs = build_definitions(
            {
                "records_database": RecordsDatabase(url=postgres_url),
                "export_storage": ExportStorage(root=str(tmp_path / "exports")),
            },
            timezone="UTC",
            first_day=dt.date(2020, 1, 1),
        )
        results: list[bool] = []

        def export() -> None:
            if launch == "location_run":
                run = execute_location_run(instance, defs, EXPORT_JOB, {}, {})
                results.append(run.status is dg.DagsterRunStatus.SUCCESS)
            elif launch == "daily":
                daily = defs.resolve_job_def("daily_account_exports_job")
                day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
                results.append(
                    daily.execute_in_process(instance=instance, partition_key=day).success
                )
            else:
                job = defs.resolve_job_def(EXPORT_JOB)
                results.append(job.execute_in_process(instance=instance).success)

        runner = threading.Thread(target=export, daemon=True)
        runner.start()

        deadline = time.monotonic() + 30
        while not storage.get_concurrency_info(RECORDS_DATABASE_POOL).pending_step_count:
            assert time.monotonic() < deadline, "the export step never asked for a slot"
            time.sleep(0.1)
        time.sleep(3 * pool_slots.POLL_SECONDS)  # a few polls of the waiting step
        info = storage.get_concurrency_info(RECORDS_DATABASE_POOL)
        assert info.active_run_ids == set(holders)
        assert runner.is_alive() and not results
        assert not [path for path in (tmp_path / "exports").rglob("*") if path.is_file()]

        storage.free_concurrency_slot_for_step(holders[0], "export")
        runner.join(timeout=60)
        assert not runner.is_alive() and results == [True]
        if launch != "daily":
            assert len(list((tmp_path / "exports").rglob("*.csv"))) == 1
        info = storage.get_concurrency_info(RECORDS_DATABASE_POOL)
        assert info.active_run_ids == {holders[1]}
