"""Export steps on Celery workers, for real: `dagster-daemon` on deploy/dagster.yaml with
`EXPORTS_EXECUTOR=celery`, two `dagster-celery` workers started with deploy/celery.yaml
(each taking one step at a time) on a throwaway vhost of the local RabbitMQ, and request
rows filed as the web app files them. Nothing in between is faked.

One deployment serves the whole module (starting a daemon and two workers costs about
20 s); each test files its own requests, and `workers` restarts any worker a test killed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import psycopg
import pytest
import yaml
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.concurrency import RECORDS_DATABASE_POOL
from pipelines.pool_slots import HOLDING_LINE
from record_exports.database import create_engine_for, parse_database_url
from record_exports.schema import create_schema
from record_exports.seed import seed_records
from tests.celery_cluster import (
    CeleryDeployment,
    Service,
    processes_of,
    rabbitmq_vhost,
    vhost_exists,
    wait_for,
    worker_names,
)
from tests.factories import libpq_url, oracle_copy_csv
from tests.postgres import create_database, drop_database

pytestmark = pytest.mark.slow

RECORDS = 20_000
ACCOUNTS = 4
FINISHED = {"succeeded", "failed", "rejected"}
REQUEST_SECONDS = 240
WORKER_KEY = "Celery worker"
WAITING_LINE = "waiting for a records_database slot:"


def instance_yaml_for_tests() -> str:
    """deploy/dagster.yaml, changed once: run monitoring polls every 5 s instead of 60 s
    and frees a finished run's slots after 5 s instead of 30 s, so a slot left by a dead
    step is freed within seconds even when no export waits for it (a waiting one takes it
    back at once, pipelines/pool_slots.py)."""
    config = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 5
    config["run_monitoring"]["free_slots_after_run_end_seconds"] = 5
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def records_url(postgres_server: str) -> Iterator[str]:
    """A records database seeded once for the module."""
    name, url = create_database(postgres_server)
    engine = create_engine_for(parse_database_url(url))
    try:
        create_schema(engine)
        seed_records(engine, RECORDS, ACCOUNTS, seed=11)
        yield url
    finally:
        engine.dispose()
        drop_database(name)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str, records_url: str
) -> Iterator[CeleryDeployment]:
    """The daemon and two workers; afterwards no process of theirs and no vhost is left."""
    storage_name, storage_url = create_database(postgres_server)
    try:
        with rabbitmq_vhost() as broker_url:
            deployed = CeleryDeployment.create(
                tmp_path_factory.mktemp("celery"),
                records_url=records_url,
                dagster_storage_url=storage_url.replace("+psycopg://", "+psycopg2://"),
                broker_url=broker_url,
                instance_yaml=instance_yaml_for_tests(),
            )
            try:
                deployed.start_daemon()
                deployed.start_workers(worker_names("rx-w", 2))
                yield deployed
            finally:
                deployed.stop_all()
            assert processes_of(deployed.home) == [], "processes left behind"
        assert not vhost_exists(broker_url)
    finally:
        drop_database(storage_name)


@pytest.fixture
def workers(deployment: CeleryDeployment) -> list[Service]:
    """The two workers, alive: one a previous test killed is started again."""
    dead = [s.name for s in deployment.services.values() if s.name != "daemon" and not s.alive()]
    if dead:
        deployment.start_workers(dead)
    return [s for s in deployment.services.values() if s.name != "daemon"]


@pytest.fixture
def records_engine(records_url: str) -> Iterator[Engine]:
    engine = create_engine_for(parse_database_url(records_url))
    yield engine
    engine.dispose()


@pytest.fixture
def instance(deployment: CeleryDeployment) -> Iterator[dg.DagsterInstance]:
    with deployment.instance() as opened:
        yield opened


def wait_until_finished(
    engine: Engine, ids: list[int], deployment: CeleryDeployment
) -> dict[int, request_store.ExportRequest]:
    deadline = time.monotonic() + REQUEST_SECONDS
    while True:
        rows = {i: request_store.get_request(engine, i) for i in ids}
        if all(row is not None and row.status in FINISHED for row in rows.values()):
            return {i: row for i, row in rows.items() if row is not None}
        if time.monotonic() > deadline:
            pytest.fail(f"requests not finished: {rows}\n{deployment.logs_tail()}")
        time.sleep(0.5)


def run_of(instance: dg.DagsterInstance, request_id: int) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(tags={"export_request_id": str(request_id)}))
    return runs[0] if runs else None


def finished_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """The run once it has ended (the request row may say `succeeded` a moment before)."""
    wait_for(
        lambda: instance.get_run_by_id(run_id).is_finished,  # type: ignore[union-attr]
        REQUEST_SECONDS,
        f"run {run_id} to end",
    )
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def step_workers(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The workers that started the run's step, in order, from the engine events the
    Celery task writes ("Executing steps export in celery worker", with its node name)."""
    names = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        metadata = event.engine_event_data.metadata if event is not None else {}
        if WORKER_KEY in metadata:
            names.append(str(metadata[WORKER_KEY].value).split("@", 1)[0])
    return names


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    """(start, end) of each step execution of a run, from STEP_START to its outcome."""
    intervals, started = [], None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started = entry.timestamp
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            assert started is not None
            intervals.append((started, entry.timestamp))
            started = None
    return intervals


def timeline(instance: dg.DagsterInstance, run_ids: list[str]) -> str:
    """Every run's events in time order, for failure messages."""
    entries = sorted(
        (entry.timestamp, run_id[:8], entry.dagster_event.event_type_value)
        for run_id in run_ids
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
    )
    return "\n".join(f"{stamp:.2f} {run} {kind}" for stamp, run, kind in entries)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, change in edges:
        open_now += change
        peak = max(peak, open_now)
    return peak


def account_where(code: str) -> str:
    """Constant SQL for the oracle (test-owned codes, never user input)."""
    return f"r.account_id = (SELECT id FROM accounts WHERE account_code = '{code}')"


REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"format": "csv"}, "TRUE"),
    *[
        ({"format": "csv", "account_codes": [f"ACC{n}"]}, account_where(f"ACC{n}"))
        for n in (1, 2, 3, 4)
    ],
    ({"format": "csv", "statuses": ["RETURN_CLOSED"]}, "r.status = 'RETURN_CLOSED'"),
]


def file_requests(engine: Engine, params: list[dict[str, Any]]) -> list[int]:
    return [request_store.insert_request(engine, p, "web") for p in params]


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_request_runs_spread_over_both_workers_and_equal_the_oracle(
    deployment: CeleryDeployment,
    workers: list[Service],
    records_engine: Engine,
    records_url: str,
    instance: dg.DagsterInstance,
) -> None:
    ids = file_requests(records_engine, [params for params, _ in REQUESTS])

    rows = wait_until_finished(records_engine, ids, deployment)

    assert {rows[i].status for i in ids} == {"succeeded"}, [rows[i].error for i in ids]
    for request_id, (_, where) in zip(ids, REQUESTS, strict=True):
        path = Path(rows[request_id].output_path or "")
        assert path.parent == deployment.exports / "requests" / str(request_id)
        assert path.read_bytes() == oracle_copy_csv(records_url, where=where)
        assert visible_files(path.parent) == [path.name, f"{path.name}.manifest.json"]
    by_worker: dict[str, list[tuple[float, float]]] = {w.name: [] for w in workers}
    for request_id in ids:
        run = finished_run(instance, rows[request_id].run_id or "")
        assert run.status == dg.DagsterRunStatus.SUCCESS
        (worker,) = step_workers(instance, run.run_id)  # the step ran once, in a worker
        by_worker[worker].extend(step_intervals(instance, run.run_id))
        assert run.run_id == rows[request_id].run_id
    assert all(by_worker.values()), f"a worker took no step: {by_worker}"
    # Each worker took one step at a time (--concurrency=1).
    assert all(most_at_once(steps) == 1 for steps in by_worker.values())


def pause_export_table(records_url: str) -> psycopg.Connection:
    """Hold an ACCESS EXCLUSIVE lock on bookkeeping_records: an export step then stops at
    its query, after it has created its temporary file, until the lock is released."""
    connection = psycopg.connect(libpq_url(records_url))
    connection.execute("LOCK TABLE bookkeeping_records IN ACCESS EXCLUSIVE MODE")
    return connection


def slot_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    """(claimed, ended) of each step execution of a run that held a `records_database`
    slot: from the step's "holding a records_database slot" line to its outcome."""
    intervals, claimed = [], None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None and entry.user_message == HOLDING_LINE:
            claimed = entry.timestamp
        elif event is not None and event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            assert claimed is not None
            intervals.append((claimed, entry.timestamp))
            claimed = None
    return intervals


def test_pool_limit_holds_across_workers(
    deployment: CeleryDeployment,
    workers: list[Service],
    records_engine: Engine,
    records_url: str,
    instance: dg.DagsterInstance,
) -> None:
    """With the `records_database` pool at 1 slot and its holder paused, two more requests'
    steps wait: one in the other worker, asleep in its step and saying so in its run log, the
    last in the broker (both workers are busy). The limit lives in the instance's database,
    so no worker gets past it. Once the slot is free the steps hold it one after another."""
    instance.event_log_storage.set_concurrency_slots(RECORDS_DATABASE_POOL, 1)
    try:
        lock = pause_export_table(records_url)
        try:
            ids = file_requests(records_engine, [{"format": "csv"}] * 3)

            def waiting(run: dg.DagsterRun) -> bool:
                messages = [e.message for e in instance.all_logs(run.run_id)]
                return any(m.startswith(WAITING_LINE) for m in messages)

            def one_holds_one_waits_in_a_worker() -> bool:
                runs = [r for r in (run_of(instance, i) for i in ids) if r is not None]
                in_workers = [r for r in runs if step_workers(instance, r.run_id)]
                return len(in_workers) == 2 and sum(waiting(r) for r in in_workers) == 1

            wait_for(one_holds_one_waits_in_a_worker, REQUEST_SECONDS, "1 holding, 1 waiting")
            time.sleep(3)  # room for a wrongly claimed slot to show up
            runs = [r for r in (run_of(instance, i) for i in ids) if r is not None]
            info = instance.event_log_storage.get_concurrency_info(RECORDS_DATABASE_POOL)
            assert len(info.claimed_slots) == 1
            assert sum(bool(step_workers(instance, r.run_id)) for r in runs) == 2
            lock.commit()
        finally:
            lock.close()
        rows = wait_until_finished(records_engine, ids, deployment)
    finally:
        # Back to the instance's default limit, taken again at the next claim.
        instance.event_log_storage.delete_concurrency_limit(RECORDS_DATABASE_POOL)

    assert {rows[i].status for i in ids} == {"succeeded"}
    holding = []
    for request_id in ids:
        run = finished_run(instance, rows[request_id].run_id or "")
        assert run.status == dg.DagsterRunStatus.SUCCESS
        holding.extend(slot_intervals(instance, run.run_id))
    assert len(holding) == 3
    assert most_at_once(holding) == 1, timeline(instance, [r.run_id for r in runs])
    info = instance.event_log_storage.get_concurrency_info(RECORDS_DATABASE_POOL)
    assert info.claimed_slots == []


def wait_for_step_in_worker(
    instance: dg.DagsterInstance, request_id: int, folder: Path, attempts: int = 1
) -> tuple[dg.DagsterRun, list[str]]:
    """Wait until the request's step has started `attempts` times in a worker and its
    temporary file exists; return the run and the workers, in order."""
    found: dict[str, Any] = {}

    def started() -> bool:
        run = run_of(instance, request_id)
        if run is None:
            return False
        found["run"], found["workers"] = run, step_workers(instance, run.run_id)
        partial = folder.exists() and any(".partial-" in p.name for p in folder.iterdir())
        return len(found["workers"]) >= attempts and partial

    wait_for(started, REQUEST_SECONDS, f"request {request_id}'s step to start in a worker")
    return found["run"], found["workers"]


def test_worker_killed_mid_step_the_step_runs_again_on_the_other_worker(
    deployment: CeleryDeployment,
    workers: list[Service],
    records_engine: Engine,
    records_url: str,
    instance: dg.DagsterInstance,
) -> None:
    lock = pause_export_table(records_url)
    try:
        (request_id,) = file_requests(records_engine, [{"format": "csv", "output_name": "all"}])
        folder = deployment.exports / "requests" / str(request_id)
        run, (first,) = wait_for_step_in_worker(instance, request_id, folder)
        victim = deployment.services[first]

        victim.kill()

        # Nothing under a final name: only the killed attempt's hidden temporary file.
        assert visible_files(folder) == []
        assert request_store.get_request(records_engine, request_id).status == "running"  # type: ignore[union-attr]
        # The broker hands the unacknowledged step to the other worker.
        _, attempts = wait_for_step_in_worker(instance, request_id, folder, attempts=2)
        assert attempts[0] == first and attempts[1] != first
        lock.commit()
    finally:
        lock.close()

    row = wait_until_finished(records_engine, [request_id], deployment)[request_id]
    assert row.status == "succeeded" and row.run_id == run.run_id
    assert Path(row.output_path or "") == folder / "all.csv"
    assert (folder / "all.csv").read_bytes() == oracle_copy_csv(records_url)
    assert visible_files(folder) == ["all.csv", "all.csv.manifest.json"]
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert all(name.startswith(".all.csv.partial-") for name in leftovers)
    assert finished_run(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert len(step_intervals(instance, run.run_id)) == 1  # one completed execution
    assert (
        instance.event_log_storage.get_concurrency_info(RECORDS_DATABASE_POOL).claimed_slots == []
    )


def pool_process_of(worker: Service) -> psutil.Process:
    """The worker's prefork child, which runs the step: the only child of the `celery`
    main process, itself the only child of the `dagster-celery` wrapper."""
    (celery_main,) = psutil.Process(worker.pgid).children()
    (pool_child,) = celery_main.children()
    return pool_child


def test_step_process_killed_fails_the_run_and_its_request(
    deployment: CeleryDeployment,
    workers: list[Service],
    records_engine: Engine,
    records_url: str,
    instance: dg.DagsterInstance,
) -> None:
    """When only the process running the step dies (out of memory, a crash) the worker
    survives, reports the loss, and the run fails: no endless re-delivery of a step that
    kills whatever runs it."""
    lock = pause_export_table(records_url)
    try:
        (request_id,) = file_requests(records_engine, [{"format": "csv", "output_name": "all"}])
        folder = deployment.exports / "requests" / str(request_id)
        run, (worker_name,) = wait_for_step_in_worker(instance, request_id, folder)
        worker = deployment.services[worker_name]
        pool_process_of(worker).kill()
        lock.commit()
    finally:
        lock.close()

    row = wait_until_finished(records_engine, [request_id], deployment)[request_id]
    assert row.status == "failed" and row.run_id == run.run_id
    assert "WorkerLostError" in (row.error or ""), row.error
    assert visible_files(folder) == []
    assert finished_run(instance, run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert step_workers(instance, run.run_id) == [worker_name]  # not sent anywhere again
    assert worker.alive()
    # Run monitoring frees the slot the dead step held once the run has ended.
    wait_for(
        lambda: (
            not instance.event_log_storage.get_concurrency_info(RECORDS_DATABASE_POOL).claimed_slots
        ),
        60,
        "the dead step's pool slot to be freed",
    )
