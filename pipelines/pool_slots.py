"""An export step's `records_database` slot: claimed by the step itself, kept alive by a
heartbeat, given back on every exit, and taken back from holders that died.

Dagster's own `pool=` claim happens in the run's executor loop, outside our code: a run whose
process is SIGKILLed keeps its slot (and its run `STARTED`) for ever, and a later export waits
there without a word, polling without sleeping, deaf to Ctrl-C. So each export step claims its
slot here, in the instance's concurrency tables (`claim_concurrency_slot`, the same tables
`dagster instance concurrency get records_database` shows and the limit of deploy/dagster.yaml
fills), which holds across processes, machines and Celery workers alike.

While it waits or holds a slot, the step writes a heartbeat every `HEARTBEAT_SECONDS` to the
instance's key-value store: its host, pid, and whether the step runs in the run's own process.
A waiting step, before each claim (every `POLL_SECONDS`, asleep in between), checks every other
holder and waiter of the pool and takes back the slots of those that are gone:

- the holder's run is finished (any end status) or no longer in the instance;
- its heartbeat is older than `STALE_AFTER_SECONDS` (machine lost, process frozen);
- it runs on this machine and its process is gone (SIGKILL, out of memory): at once.

A dead holder that ran in its run's own process (the CLI, a run the daemon launched with the
in-process executor) took its run down with it: that run is marked failed with the reason,
which also tells the request sensors. A dead Celery step only loses its slot; its run's
process decides (the broker may hand the step to another worker, which claims again).

Waiting is said once in the run log and on `WAITING_MESSAGES` (the CLI prints it on stderr),
then again when the holders change or every `REPEAT_WAITING_SECONDS`.

Dagster internals used (probed by tests/pipelines/test_pool_slots.py): the instance's
`event_log_storage` concurrency methods (`get_pool_config`, `get_pool_limits`,
`initialize_concurrency_limit_to_default`, `claim_concurrency_slot`, `get_concurrency_info`,
`free_concurrency_slot_for_step`), the `ConcurrencyKeyInfo` they return (from
`dagster._utils.concurrency`), and `run_storage.get_cursor_values`/`set_cursor_values`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
from dagster._utils.concurrency import ConcurrencyKeyInfo
from sqlalchemy.exc import SQLAlchemyError

from pipelines.concurrency import RECORDS_DATABASE_POOL

HEARTBEAT_SECONDS = 10.0
STALE_AFTER_SECONDS = 45.0
POLL_SECONDS = 1.5
REPEAT_WAITING_SECONDS = 30.0
HEARTBEAT_KEY_PREFIX = f"pool_slot_heartbeat/{RECORDS_DATABASE_POOL}/"
HOLDING_LINE = f"holding a {RECORDS_DATABASE_POOL} slot"
"""The run-log line of the moment a step's slot is claimed (it is given back when the step
ends)."""

WAITING_MESSAGES = logging.getLogger("record_exports.slot_waiting")
""""waiting for a records_database slot: ..." lines of the steps running in this process.
Emitted only while a handler is attached to this logger itself (the CLI attaches one that
prints on stderr); the run log gets the same line either way."""

Log = Callable[[str], None]
LOGGER = logging.getLogger(__name__)


def _boot_id() -> str:
    """Tells this machine's current boot apart from another machine of the same name."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


THIS_HOST = f"{socket.gethostname()}/{_boot_id()}"


def process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot, or None when no such
    process runs (a zombie counts as gone). Tells a pid reused by another process apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start = fields[0], fields[19]
    return None if state in ("Z", "X") else start


@dataclass(frozen=True)
class Heartbeat:
    """What a step holding or waiting for a slot writes about itself."""

    run_id: str
    step_key: str
    host: str
    pid: int
    pid_start: str | None
    run_process: bool
    beat: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Heartbeat | None:
        try:
            return Heartbeat(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def process_gone(self) -> bool:
        """This machine's process of the heartbeat has ended (only knowable here)."""
        return self.host == THIS_HOST and process_start(self.pid) != self.pid_start


def heartbeat_key(run_id: str, step_key: str) -> str:
    return f"{HEARTBEAT_KEY_PREFIX}{run_id}/{step_key}"


def read_heartbeats(
    instance: dg.DagsterInstance, holders: set[tuple[str, str]]
) -> dict[tuple[str, str], Heartbeat]:
    keys = {heartbeat_key(run_id, step_key): (run_id, step_key) for run_id, step_key in holders}
    found: dict[tuple[str, str], Heartbeat] = {}
    if not keys:
        return found
    for key, value in instance.run_storage.get_cursor_values(set(keys)).items():
        heartbeat = Heartbeat.from_json(value)
        if heartbeat is not None:
            found[keys[key]] = heartbeat
    return found


@contextmanager
def claims_serialized(instance: dg.DagsterInstance) -> Iterator[None]:
    """Changes to the pool's tables one process of this machine at a time (`flock` on a file
    in the instance's folder; the kernel frees it if the process dies).

    Dagster's SQLite storage (the CLI's local instance) claims a slot by reading a free slot
    row and then updating it, with no row lock in between: two exports claiming at once took
    the same row (both ran, one claim was lost), and two creating the pool at once made 4
    slots of 2. On PostgreSQL storage Dagster locks the row; the file lock costs nothing."""
    lock_file = Path(instance.root_directory) / ".records_database_slots.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_pool_limit(instance: dg.DagsterInstance) -> int | None:
    """The pool's limit, created from the instance's `default_limit` when the pool is new
    (as Dagster's own claim does); None when the instance sets no limit."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return None
    with claims_serialized(instance):
        return _ensure_pool_limit(instance)


def _ensure_pool_limit(instance: dg.DagsterInstance) -> int | None:
    storage = instance.event_log_storage
    default = storage.get_pool_config().default_pool_limit
    pools = {pool.name: pool for pool in storage.get_pool_limits()}
    pool = pools.get(RECORDS_DATABASE_POOL)
    if (pool is None and default is not None) or (
        pool is not None and pool.from_default and pool.limit != default
    ):
        storage.initialize_concurrency_limit_to_default(RECORDS_DATABASE_POOL)
        pools = {pool.name: pool for pool in storage.get_pool_limits()}
        pool = pools.get(RECORDS_DATABASE_POOL)
    return None if pool is None else pool.limit


class DeadHolders:
    """Finds the pool's holders and waiters that are gone, and takes their slots back."""

    def __init__(self, instance: dg.DagsterInstance, me: tuple[str, str], log: Log) -> None:
        self.instance = instance
        self.me = me
        self.log = log
        self.first_seen: dict[tuple[str, str], float] = {}

    def reason_gone(
        self, holder: tuple[str, str], run: dg.DagsterRun | None, heartbeat: Heartbeat | None
    ) -> str | None:
        """Why `holder` no longer needs its slot, or None while it may still be working."""
        run_id = holder[0]
        if run is None:
            return f"run {run_id} is not in the instance"
        if run.is_finished:
            return f"run {run_id} ended ({run.status.value})"
        now = time.time()
        if heartbeat is None:
            seen = self.first_seen.setdefault(holder, now)
            if now - seen > STALE_AFTER_SECONDS:
                return f"run {run_id} held it for {now - seen:.0f} s without a heartbeat"
            return None
        if heartbeat.process_gone():
            return f"the process of run {run_id} (pid {heartbeat.pid}) is gone"
        if now - heartbeat.beat > STALE_AFTER_SECONDS:
            return (
                f"run {run_id} sent no heartbeat for {now - heartbeat.beat:.0f} s "
                f"(pid {heartbeat.pid} on {heartbeat.host.split('/')[0]})"
            )
        return None

    def reclaim(self, info: ConcurrencyKeyInfo) -> int:
        """Free the slots and queue places of dead holders in `info` (the pool's
        `ConcurrencyKeyInfo`); mark their runs failed when the run died with them.
        Returns how many were freed."""
        holders = {(slot.run_id, slot.step_key) for slot in info.claimed_slots}
        holders |= {(step.run_id, step.step_key) for step in info.pending_steps}
        holders.discard(self.me)
        heartbeats = read_heartbeats(self.instance, holders)
        freed = 0
        for holder in sorted(holders):
            run = self.instance.get_run_by_id(holder[0])
            heartbeat = heartbeats.get(holder)
            reason = self.reason_gone(holder, run, heartbeat)
            if reason is None:
                continue
            self.take_back(holder, run, heartbeat, reason)
            freed += 1
        return freed

    def take_back(
        self,
        holder: tuple[str, str],
        run: dg.DagsterRun | None,
        heartbeat: Heartbeat | None,
        reason: str,
    ) -> None:
        run_id, step_key = holder
        with claims_serialized(self.instance):
            self.instance.event_log_storage.free_concurrency_slot_for_step(run_id, step_key)
        self.first_seen.pop(holder, None)
        announce(self.log, f"freed the {RECORDS_DATABASE_POOL} slot of run {run_id[:8]} ({reason})")
        if run is None or run.is_finished or heartbeat is None or not heartbeat.run_process:
            return
        current = self.instance.get_run_by_id(run_id)
        if current is not None and not current.is_finished:
            self.instance.report_run_failed(
                current,
                f"Marked failed by run {self.me[0]}: {reason}; its "
                f"{RECORDS_DATABASE_POOL} slot was given back.",
            )


def waiting_line(limit: int, holder_runs: list[str]) -> str:
    """`waiting for a records_database slot: 2 of 2 held by runs 1a2b3c4d, 5e6f7a8b`."""
    shown = ", ".join(run_id[:8] for run_id in holder_runs) or "none yet"
    return (
        f"waiting for a {RECORDS_DATABASE_POOL} slot: {len(holder_runs)} of {limit} held by "
        f"runs {shown}"
    )


class HeartbeatThread(threading.Thread):
    """Writes the step's heartbeat every `HEARTBEAT_SECONDS` until stopped."""

    def __init__(self, instance: dg.DagsterInstance, heartbeat: Heartbeat) -> None:
        super().__init__(name="records-database-slot-heartbeat", daemon=True)
        self.instance = instance
        self.heartbeat = heartbeat
        self.stopped = threading.Event()

    def beat(self) -> None:
        now = Heartbeat(**{**asdict(self.heartbeat), "beat": time.time()})
        key = heartbeat_key(self.heartbeat.run_id, self.heartbeat.step_key)
        self.instance.run_storage.set_cursor_values({key: now.to_json()})

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                self.beat()
            except SQLAlchemyError as error:
                # The next beat may get through; STALE_AFTER_SECONDS allows several misses.
                LOGGER.warning("heartbeat of run %s not written: %s", self.heartbeat.run_id, error)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def announce(context_log: Log, line: str) -> None:
    context_log(line)
    if WAITING_MESSAGES.handlers:
        WAITING_MESSAGES.info(line)


def wait_for_slot(instance: dg.DagsterInstance, me: tuple[str, str], limit: int, log: Log) -> None:
    """Claim a slot for `me` (run id, step key), taking back dead holders' slots, sleeping
    `POLL_SECONDS` between tries. Interrupts (Ctrl-C, SIGTERM) end the sleep at once."""
    storage = instance.event_log_storage
    dead = DeadHolders(instance, me, log)
    said: tuple[list[str], float] | None = None
    while True:
        info = storage.get_concurrency_info(RECORDS_DATABASE_POOL)
        dead.reclaim(info)
        with claims_serialized(instance):
            claimed = storage.claim_concurrency_slot(RECORDS_DATABASE_POOL, *me).is_claimed
        if claimed:
            log(HOLDING_LINE)
            return
        info = storage.get_concurrency_info(RECORDS_DATABASE_POOL)
        holders = sorted({slot.run_id for slot in info.claimed_slots})
        now = time.monotonic()
        if said is None or said[0] != holders or now - said[1] >= REPEAT_WAITING_SECONDS:
            announce(log, waiting_line(info.limit or limit, holders))
            said = (holders, now)
        time.sleep(POLL_SECONDS)


@contextmanager
def records_database_slot(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
) -> Iterator[None]:
    """Hold a `records_database` slot for the body of an export step (see the module's
    docstring); given back on every exit, exceptions and interrupts included."""
    step = (
        context.op_execution_context if isinstance(context, dg.AssetExecutionContext) else context
    )
    instance = step.instance
    limit = ensure_pool_limit(instance)
    if limit is None:
        yield
        return
    me = (step.run.run_id, str(step.op_handle))
    heartbeat = Heartbeat(
        run_id=me[0],
        step_key=me[1],
        host=THIS_HOST,
        pid=os.getpid(),
        pid_start=process_start(os.getpid()),
        run_process=step.job_def.executor_def.name == dg.in_process_executor.name,
        beat=time.time(),
    )
    beater = HeartbeatThread(instance, heartbeat)
    beater.beat()
    beater.start()
    try:
        wait_for_slot(instance, me, limit, step.log.info)
        yield
    finally:
        beater.stop()
        with claims_serialized(instance):
            instance.event_log_storage.free_concurrency_slot_for_step(*me)
