"""`records_database` slots with real processes: SIGKILLed exports give their slots back, a
waiting export says so, sleeps, and stops at once on SIGTERM or Ctrl-C.

Exports are held inside their step, slot claimed, by an ACCESS EXCLUSIVE lock the test holds
on `bookkeeping_records`: the export's query waits for it, as behind a long transaction.
Every process a test starts is reaped (killed if still running) before it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import psycopg
import pytest
from dagster._utils.concurrency import ConcurrencyKeyInfo
from sqlalchemy.engine import Engine

from pipelines import pool_slots
from pipelines.concurrency import RECORDS_DATABASE_POOL
from pipelines.local_instance import local_instance_yaml
from pipelines.pool_slots import DeadHolders, Heartbeat, heartbeat_key, process_start
from pipelines.request_store import EXPORT_REQUEST_TAG, insert_request
from record_exports.seed import seed_records
from tests.factories import libpq_url

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 120
WAITING = "waiting for a records_database slot: 2 of 2 held by runs "


@dataclass
class Deployment:
    """A seeded records database and a local instance with the shipped pool limit (2)."""

    url: str
    home: Path
    exports: Path
    folder: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]
    stderr_files: list[Path]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def stderr_of_all(self) -> str:
        """What every process started so far printed on stderr, and how it ended."""
        return "\n".join(
            f"--- {path.name} (exit {process.poll()}):\n{path.read_text()}"
            for process, path in zip(self.processes, self.stderr_files, strict=True)
        )

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A process of this deployment (`pipelines.cli export ...` by default); its stderr
        goes to a file the test reads while it runs."""
        err = self.folder / f"{name}.stderr"
        command = list(args) or ["-m", "pipelines.cli", "export"]
        with err.open("wb") as stream:
            process = subprocess.Popen(
                [sys.executable, *command],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=stream,
            )
        self.processes.append(process)
        self.stderr_files.append(err)
        return process, err


@pytest.fixture
def deployment(tmp_path: Path, pg_engine: Engine, postgres_url: str) -> Iterator[Deployment]:
    seed_records(pg_engine, 300, 2, seed=5)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(local_instance_yaml())
    exports = tmp_path / "exports"
    env = {
        **os.environ,
        "RECORDS_DATABASE_URL": postgres_url,
        "DAGSTER_HOME": str(home),
        "EXPORTS_DIR": str(exports),
    }
    deployment = Deployment(postgres_url, home, exports, tmp_path, env, [], [])
    try:
        yield deployment
    finally:
        for process in deployment.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=WAIT_SECONDS)
            if process.stdout is not None:
                process.stdout.close()


@contextmanager
def records_table_locked(url: str) -> Iterator[None]:
    """Exports stop at their query (slot claimed) until the block ends."""
    with psycopg.connect(libpq_url(url)) as connection:
        connection.execute("LOCK TABLE bookkeeping_records IN ACCESS EXCLUSIVE MODE")
        yield
        connection.rollback()


def blocked_queries(url: str) -> int:
    """Sessions of the records database waiting for a lock (the test's table lock)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for(
    check: Callable[[], bool],
    what: str,
    timeout: float = WAIT_SECONDS,
    detail: Callable[[], str] = str,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{detail()}"
        time.sleep(0.2)


def pool_info(instance: dg.DagsterInstance) -> ConcurrencyKeyInfo:
    return instance.event_log_storage.get_concurrency_info(RECORDS_DATABASE_POOL)


def holders(instance: dg.DagsterInstance) -> set[str]:
    return {slot.run_id for slot in pool_info(instance).claimed_slots}


def waiters(instance: dg.DagsterInstance) -> set[str]:
    """Runs queued for a slot (holders stay in the queue too, assigned)."""
    queue = pool_info(instance).pending_steps
    return {step.run_id for step in queue if step.assigned_timestamp is None}


def run_status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    [entry] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert entry.dagster_event is not None
    return str(entry.dagster_event.message)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def hold_both_slots(deployment: Deployment, instance: dg.DagsterInstance) -> list[str]:
    """Start two CLI exports that claim both slots and wait at the locked table; their run ids."""
    for name in ("first", "second"):
        deployment.start(
            name,
            "-m",
            "pipelines.cli",
            "export",
            "--output",
            str(deployment.folder / "held" / f"{name}.csv"),
        )
    wait_for(
        lambda: len(holders(instance)) == 2,
        "two exports to hold both slots",
        detail=deployment.stderr_of_all,
    )
    return sorted(holders(instance))


@pytest.mark.slow
def export_next(deployment: Deployment, target: Path) -> subprocess.CompletedProcess[str]:
    """The export that comes after the killed ones: the CLI in its own process, to `target`."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "export", "--output", str(target)],
        cwd=REPO_ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )


def test_killed_exports_give_their_slots_back_and_the_next_export_runs(
    deployment: Deployment,
) -> None:
    """Issue 10, item 1: two exports SIGKILLed while they hold both slots. Their runs stay
    STARTED with the slots held (what blocked every later export); the next export takes the
    slots back at once, marks both runs failed saying why, and writes its file."""
    with deployment.instance() as instance, records_table_locked(deployment.url):
        dead = hold_both_slots(deployment, instance)
        for process in deployment.processes:
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=WAIT_SECONDS) == -signal.SIGKILL
        assert holders(instance) == set(dead)
        assert {run_status(instance, run_id) for run_id in dead} == {dg.DagsterRunStatus.STARTED}

    target = deployment.folder / "next" / "records.csv"
    result = export_next(deployment, target)
    assert result.returncode == 0, result.stderr
    for run_id in dead:
        assert f"freed the records_database slot of run {run_id[:8]}" in result.stderr
    assert files_in(target.parent) == ["records.csv", "records.csv.manifest.json"]
    with deployment.instance() as instance:
        for run_id in dead:
            assert run_status(instance, run_id) == dg.DagsterRunStatus.FAILURE
            message = failure_message(instance, run_id)
            assert f"the process of run {run_id}" in message and "is gone" in message
        info = pool_info(instance)
        assert info.claimed_slots == [] and info.pending_steps == []
        [newest] = instance.get_runs(limit=1)
        assert newest.status == dg.DagsterRunStatus.SUCCESS


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@pytest.mark.slow
def test_a_waiting_export_says_so_sleeps_and_stops_at_once_on_sigterm_and_ctrl_c(
    deployment: Deployment,
) -> None:
    """Behind two live holders, an export prints the waiting line naming them (stderr is a
    file here, not a terminal), and the run log has it too. While it waits it uses a small
    fraction of one core. SIGTERM, then Ctrl-C (SIGINT) to another one: exit 1 with a
    one-line message, its run failed, no file or partial written, its queue place gone, and
    the live holders keep their slots and finish."""
    with deployment.instance() as instance, records_table_locked(deployment.url):
        live = hold_both_slots(deployment, instance)
        for number, sent in enumerate((signal.SIGTERM, signal.SIGINT)):
            out = deployment.folder / f"waiter-{number}"
            waiter, err = deployment.start(
                f"waiter-{number}",
                "-m",
                "pipelines.cli",
                "export",
                "--output",
                str(out / "records.csv"),
            )
            wait_for(
                lambda err=err: WAITING in err.read_text(),  # type: ignore[misc]
                "the waiting line",
                detail=deployment.stderr_of_all,
            )
            line = next(x for x in err.read_text().splitlines() if x.startswith(WAITING))
            assert sorted(line.removeprefix(WAITING).split(", ")) == [r[:8] for r in live]
            [waiting_run] = waiters(instance)
            logged = [e.message for e in instance.all_logs(waiting_run)]
            assert any(message.startswith(WAITING) for message in logged)

            watched = psutil.Process(waiter.pid)
            cpu_before, wall_before = cpu_seconds(watched), time.monotonic()
            time.sleep(8 * pool_slots.POLL_SECONDS)  # several polls
            cpu = cpu_seconds(watched) - cpu_before
            wall = time.monotonic() - wall_before
            assert cpu / wall < 0.1, f"{cpu:.2f} CPU-s in {wall:.1f} s of waiting"

            waiter.send_signal(sent)
            assert waiter.wait(timeout=60) == 1
            errors = [x for x in err.read_text().splitlines() if x.startswith("error:")]
            assert len(errors) == 1 and "interrupted" in errors[0], err.read_text()
            assert files_in(out) == []
            assert run_status(instance, waiting_run) == dg.DagsterRunStatus.FAILURE
            assert waiters(instance) == set() and holders(instance) == set(live)

    for process in deployment.processes[:2]:
        assert process.wait(timeout=WAIT_SECONDS) == 0
    with deployment.instance() as instance:
        assert {run_status(instance, run_id) for run_id in live} == {dg.DagsterRunStatus.SUCCESS}
        assert pool_info(instance).claimed_slots == []


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_a_running_export_blocked_in_the_database_stops_at_once(
    deployment: Deployment, sent: signal.Signals
) -> None:
    """An export holding its slot, its query blocked by the table lock (in C code, where no
    Python signal handler runs): SIGTERM or Ctrl-C still stops it while the lock is held (its
    query is cancelled, pipelines/interrupts.py): exit 1, one line, run failed, slot free,
    nothing written."""
    out = deployment.folder / "running"
    with deployment.instance() as instance, records_table_locked(deployment.url):
        export, err = deployment.start(
            "running", "-m", "pipelines.cli", "export", "--output", str(out / "records.csv")
        )
        wait_for(
            lambda: len(holders(instance)) == 1,
            "the export to hold a slot",
            detail=deployment.stderr_of_all,
        )
        [run_id] = holders(instance)
        wait_for(lambda: blocked_queries(deployment.url) == 1, "the export's query to block")
        export.send_signal(sent)
        assert export.wait(timeout=60) == 1, deployment.stderr_of_all()
        errors = [x for x in err.read_text().splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and "interrupted" in errors[0], err.read_text()
        assert run_status(instance, run_id) == dg.DagsterRunStatus.FAILURE
        assert pool_info(instance).claimed_slots == []
        assert files_in(out) == []


REQUEST_RUN = """
import sys
import dagster as dg
from pipelines.definitions import defs
from pipelines.export_job import EXPORT_JOB
from pipelines.location_runs import execute_location_run
with dg.DagsterInstance.get() as instance:
    execute_location_run(instance, defs, EXPORT_JOB, {}, {sys.argv[1]: sys.argv[2]})
"""


@pytest.mark.slow
def test_a_killed_request_run_gives_its_slot_back(
    deployment: Deployment, pg_engine: Engine
) -> None:
    """A request run (the job with its `export_request_id` tag, executed in its own process as
    the daemon's run worker does) SIGKILLed while it holds the pool's only slot: the next
    export takes the slot back and marks the run failed, which the request sensors then
    write on the row."""
    request_id = insert_request(pg_engine, {"format": "csv"}, "test")
    with deployment.instance() as instance:
        instance.event_log_storage.set_concurrency_slots(RECORDS_DATABASE_POOL, 1)
        with records_table_locked(deployment.url):
            request_run, _ = deployment.start(
                "request", "-c", REQUEST_RUN, EXPORT_REQUEST_TAG, str(request_id)
            )
            wait_for(
                lambda: len(holders(instance)) == 1,
                "the request run to hold the slot",
                detail=deployment.stderr_of_all,
            )
            [dead] = holders(instance)
            run = instance.get_run_by_id(dead)
            assert run is not None and run.tags[EXPORT_REQUEST_TAG] == str(request_id)
            request_run.send_signal(signal.SIGKILL)
            assert request_run.wait(timeout=WAIT_SECONDS) == -signal.SIGKILL

        target = deployment.folder / "next" / "records.csv"
        result = export_next(deployment, target)
        assert result.returncode == 0, result.stderr
        assert run_status(instance, dead) == dg.DagsterRunStatus.FAILURE
        assert "is gone" in failure_message(instance, dead)
        assert pool_info(instance).claimed_slots == []
        # Nothing under a final name; the killed step's hidden `.partial-` file is swept by
        # the next export into that folder (not this one's, which writes elsewhere).
        written = files_in(deployment.exports / "requests")
        assert all(name.startswith(".") and ".partial-" in name for name in written)


def started_run(instance: dg.DagsterInstance) -> str:
    run = instance.add_run(
        dg.DagsterRun(
            job_name="export_records",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    return run.run_id


def write_heartbeat(instance: dg.DagsterInstance, run_id: str, **fields: object) -> None:
    beat = {
        "run_id": run_id,
        "step_key": "export",
        "host": pool_slots.THIS_HOST,
        "pid": os.getpid(),
        "pid_start": process_start(os.getpid()),
        "run_process": True,
        "beat": time.time(),
        **fields,
    }
    instance.run_storage.set_cursor_values(
        {heartbeat_key(run_id, "export"): Heartbeat(**beat).to_json()}  # type: ignore[arg-type]
    )


def test_which_holders_are_taken_back(tmp_path: Path) -> None:
    """The reclaim rules on a real instance and real processes: a live process on this
    machine and a fresh heartbeat from another machine keep their slots; a heartbeat older
    than `STALE_AFTER_SECONDS` (a machine lost), a finished run and a pid that ended lose
    theirs, a waiter whose process ended loses its place in the queue, and only the runs
    that died with their step are marked failed."""
    overrides = {"concurrency": {"pools": {"default_limit": 6}}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        assert pool_slots.ensure_pool_limit(instance) == 6
        storage = instance.event_log_storage
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        runs = {
            name: started_run(instance)
            for name in ("alive", "far_fresh", "far_stale", "finished", "pid_gone", "celery_gone")
        }
        write_heartbeat(instance, runs["alive"])
        write_heartbeat(instance, runs["far_fresh"], host="elsewhere/boot", pid=1)
        write_heartbeat(
            instance,
            runs["far_stale"],
            host="elsewhere/boot",
            pid=1,
            beat=time.time() - pool_slots.STALE_AFTER_SECONDS - 5,
        )
        write_heartbeat(instance, runs["finished"])
        write_heartbeat(instance, runs["pid_gone"], pid=ended.pid, pid_start="1")
        write_heartbeat(
            instance, runs["celery_gone"], pid=ended.pid, pid_start="1", run_process=False
        )
        for run_id in runs.values():
            assert storage.claim_concurrency_slot(
                RECORDS_DATABASE_POOL, run_id, "export"
            ).is_claimed
        runs["waiter_gone"] = started_run(instance)
        write_heartbeat(instance, runs["waiter_gone"], pid=ended.pid, pid_start="1")
        claim = storage.claim_concurrency_slot(RECORDS_DATABASE_POOL, runs["waiter_gone"], "export")
        assert not claim.is_claimed and waiters(instance) == {runs["waiter_gone"]}
        finished = instance.get_run_by_id(runs["finished"])
        assert finished is not None
        instance.report_run_canceled(finished)

        lines: list[str] = []
        me = (started_run(instance), "export")
        freed = DeadHolders(instance, me, lines.append).reclaim(pool_info(instance))

        assert freed == 5 and len(lines) == 5
        assert holders(instance) == {runs["alive"], runs["far_fresh"]}
        assert waiters(instance) == set()
        status = {name: run_status(instance, run_id) for name, run_id in runs.items()}
        assert status == {
            "alive": dg.DagsterRunStatus.STARTED,
            "far_fresh": dg.DagsterRunStatus.STARTED,
            "far_stale": dg.DagsterRunStatus.FAILURE,
            "finished": dg.DagsterRunStatus.CANCELED,
            "pid_gone": dg.DagsterRunStatus.FAILURE,
            "celery_gone": dg.DagsterRunStatus.STARTED,  # its run's process decides
            "waiter_gone": dg.DagsterRunStatus.FAILURE,
        }
        assert "sent no heartbeat for" in failure_message(instance, runs["far_stale"])


CLAIM_AT_ONCE = """
import sys, time
from pathlib import Path
import dagster as dg
from pipelines import pool_slots
home, run_id, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with dg.DagsterInstance.from_config(home) as instance:
    while not go.exists():
        time.sleep(0.001)
    limit = pool_slots.ensure_pool_limit(instance)
    pool_slots.wait_for_slot(instance, (run_id, "export"), limit, print)
"""


@pytest.mark.slow
def test_simultaneous_claims_take_distinct_slots(tmp_path: Path) -> None:
    """Six processes creating the pool and claiming at the same moment on a SQLite instance
    (the CLI's local one): 6 slots, each held by one of them. Dagster's SQLite storage,
    unserialized, gave two claimants the same slot row, and could make extra slots."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 6\n")
    go = tmp_path / "go"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = [started_run(instance) for _ in range(6)]
        claimants = [
            subprocess.Popen(
                [sys.executable, "-c", CLAIM_AT_ONCE, str(home), run_id, str(go)], cwd=REPO_ROOT
            )
            for run_id in runs
        ]
        try:
            time.sleep(8)  # let every claimant load Dagster and wait for the signal
            go.touch()
            assert [claimant.wait(timeout=WAIT_SECONDS) for claimant in claimants] == [0] * 6
        finally:
            for claimant in claimants:
                if claimant.poll() is None:
                    claimant.kill()
                    claimant.wait()
        info = pool_info(instance)
        assert info.slot_count == 6
        assert sorted(slot.run_id for slot in info.claimed_slots) == sorted(runs)


def test_dagster_internals_used_by_pool_slots(tmp_path: Path) -> None:
    """Probe: the storage methods and result fields pipelines/pool_slots.py relies on."""
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        storage = instance.event_log_storage
        assert storage.supports_global_concurrency_limits
        assert storage.get_pool_config().default_pool_limit == 1
        assert pool_slots.ensure_pool_limit(instance) == 1
        [pool] = storage.get_pool_limits()
        assert (pool.name, pool.limit, pool.from_default) == (RECORDS_DATABASE_POOL, 1, True)
        assert storage.claim_concurrency_slot(RECORDS_DATABASE_POOL, "r1", "export").is_claimed
        assert not storage.claim_concurrency_slot(RECORDS_DATABASE_POOL, "r2", "export").is_claimed
        info = storage.get_concurrency_info(RECORDS_DATABASE_POOL)
        assert [(s.run_id, s.step_key) for s in info.claimed_slots] == [("r1", "export")]
        # a holder stays in the queue, assigned; a waiter is in it unassigned
        queue = {
            (s.run_id, s.step_key, s.assigned_timestamp is not None) for s in info.pending_steps
        }
        assert queue == {("r1", "export", True), ("r2", "export", False)}
        storage.free_concurrency_slot_for_step("r1", "export")
        assert storage.claim_concurrency_slot(RECORDS_DATABASE_POOL, "r2", "export").is_claimed
        storage.free_concurrency_slot_for_step("r2", "export")
        info = storage.get_concurrency_info(RECORDS_DATABASE_POOL)
        assert info.claimed_slots == [] and info.pending_steps == []
        instance.run_storage.set_cursor_values({"probe": "1"})
        instance.run_storage.set_cursor_values({"probe": "2"})
        assert instance.run_storage.get_cursor_values({"probe", "none"}) == {"probe": "2"}
