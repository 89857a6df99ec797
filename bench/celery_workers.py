"""The same set of export runs on one Celery worker and on two: wall time of each.

    python -m bench.celery_workers                   # 8 xlsx requests of 100k rows, 2 trials
    python -m bench.celery_workers --format csv --records 2000000

Not part of `make bench`: it needs RabbitMQ and starts a whole deployment (the daemon on
deploy/dagster.yaml with `EXPORTS_EXECUTOR=celery`, workers from deploy/celery.yaml, a
throwaway vhost and databases; tests/celery_cluster.py), like the Celery tests do.
One request per account is filed at once, as the web app would; the wall time runs from
the creation of the first run to the end of the last, so the sensor's polling interval
is left out. Trials alternate one worker / two workers; each trial starts its workers
afresh and first files one small warm-up export per worker (not timed).
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import psutil
from sqlalchemy.engine import Engine

from pipelines import request_store
from record_exports.database import create_engine_for, parse_database_url
from record_exports.schema import create_schema
from record_exports.seed import account_code, seed_records
from tests.celery_cluster import CeleryDeployment, rabbitmq_vhost, wait_for, worker_names
from tests.postgres import ADMIN_URL, create_database, drop_database

REQUEST_SECONDS = 1800


def wait_finished(engine: Engine, ids: list[int]) -> list[request_store.ExportRequest]:
    rows: list[request_store.ExportRequest] = []

    def finished() -> bool:
        rows[:] = [r for r in (request_store.get_request(engine, i) for i in ids) if r]
        return len(rows) == len(ids) and all(
            r.status in ("succeeded", "failed", "rejected") for r in rows
        )

    wait_for(finished, REQUEST_SECONDS, f"requests {ids}")
    failed = [(r.id, r.status, r.error) for r in rows if r.status != "succeeded"]
    if failed:
        raise RuntimeError(f"requests did not succeed: {failed}")
    return rows


def run_window(instance: dg.DagsterInstance, run_ids: list[str]) -> tuple[float, float]:
    """From the first run's creation to the last run's end (request rows say `succeeded`
    a moment before their run ends)."""
    for run_id in run_ids:
        wait_for(functools.partial(_ended, instance, run_id), 120, f"run {run_id} to end")
    records = [instance.get_run_record_by_id(run_id) for run_id in run_ids]
    starts = [r.create_timestamp.timestamp() for r in records if r is not None]
    ends = [r.end_time for r in records if r is not None and r.end_time is not None]
    return min(starts), max(ends)


def _ended(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.is_finished


def step_time(instance: dg.DagsterInstance, run_id: str) -> float:
    """Seconds from STEP_START to STEP_SUCCESS: the export itself, in the worker."""
    stamps = {
        entry.dagster_event.event_type: entry.timestamp
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
        and entry.dagster_event.event_type
        in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
    }
    return stamps[dg.DagsterEventType.STEP_SUCCESS] - stamps[dg.DagsterEventType.STEP_START]


def trial(
    deployment: CeleryDeployment,
    engine: Engine,
    workers: int,
    export_format: str,
    accounts: int,
) -> tuple[float, float, dict[str, int]]:
    started = deployment.start_workers(worker_names("bench-w", workers))
    try:
        warm_up = [
            request_store.insert_request(
                engine,
                {
                    "format": "csv",
                    "account_codes": [account_code(1)],
                    "statuses": ["RETURN_CLOSED"],
                },
                "bench",
            )
            for _ in started
        ]
        wait_finished(engine, warm_up)
        ids = [
            request_store.insert_request(
                engine, {"format": export_format, "account_codes": [account_code(n)]}, "bench"
            )
            for n in range(1, accounts + 1)
        ]
        rows = wait_finished(engine, ids)
        with deployment.instance() as instance:
            first, last = run_window(instance, [r.run_id or "" for r in rows])
            per_worker: dict[str, int] = {}
            step_seconds = sum(step_time(instance, row.run_id or "") for row in rows)
            for row in rows:
                for entry in instance.all_logs(
                    row.run_id or "", of_type=dg.DagsterEventType.ENGINE_EVENT
                ):
                    data = entry.dagster_event.engine_event_data if entry.dagster_event else None
                    if data is not None and "Celery worker" in data.metadata:
                        name = str(data.metadata["Celery worker"].value).split("@")[0]
                        per_worker[name] = per_worker.get(name, 0) + 1
        return last - first, step_seconds, per_worker
    finally:
        for worker in started:
            worker.stop()
            del deployment.services[worker.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=800_000)
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--format", default="xlsx")
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()

    server = ADMIN_URL.rsplit("/", 1)[0]
    records_name, records_url = create_database(server)
    storage_name, storage_url = create_database(server)
    engine = create_engine_for(parse_database_url(records_url))
    try:
        create_schema(engine)
        seeding = time.monotonic()
        seed_records(engine, args.records, args.accounts, seed=3)
        print(
            f"seeded {args.records:,} records over {args.accounts} accounts "
            f"in {time.monotonic() - seeding:.1f} s"
        )
        with rabbitmq_vhost() as broker, tempfile.TemporaryDirectory() as folder:
            deployment = CeleryDeployment.create(
                Path(folder),
                records_url=records_url,
                dagster_storage_url=storage_url.replace("+psycopg://", "+psycopg2://"),
                broker_url=broker,
            )
            try:
                deployment.start_daemon()
                results: list[tuple[int, float, float]] = []
                for _ in range(args.trials):
                    for workers in (1, 2):
                        load = os.getloadavg()[0]
                        wall, steps, per_worker = trial(
                            deployment, engine, workers, args.format, args.accounts
                        )
                        results.append((workers, wall, steps))
                        print(
                            f"{workers} worker(s): {wall:6.1f} s wall, {steps:6.1f} s in steps, "
                            f"steps per worker {sorted(per_worker.values())}, "
                            f"load before {load:.1f}",
                            flush=True,
                        )
            finally:
                deployment.stop_all()
        print(
            f"\n{args.accounts} {args.format} requests of about "
            f"{args.records // args.accounts:,} rows, {psutil.cpu_count()} cores"
        )
        for workers in (1, 2):
            walls = [round(w, 1) for n, w, _ in results if n == workers]
            step_times = [round(t, 1) for n, _, t in results if n == workers]
            print(f"{workers} worker(s): wall {walls} s, summed step time {step_times} s")
    finally:
        engine.dispose()
        drop_database(records_name)
        drop_database(storage_name)


if __name__ == "__main__":
    main()
